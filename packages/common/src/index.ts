export { writeFileAtomic, existingFiles } from './atomic-file.js';
export type { AtomicWriteOptions } from './atomic-file.js';
export { canonicalize, canonicalBytes, canonicalString, canonicalKey, MAX_CANONICAL_DEPTH } from './canonical-json.js';
export { silentLogger } from './logger.js';
export type { Logger } from './logger.js';
export { loopbackRefusal } from './loopback-request.js';
export { coalesce } from './cork.js';
export type { Corkable } from './cork.js';
