export { caCommand, runCaInit } from './ca-command.js';
export type { CaInitOptions } from './ca-command.js';
export {
  identityCommand,
  runIdentityIssue,
  runIdentityInspect,
  runIdentityToken,
  inspectIdentity,
  P12_PASSWORD_ENV,
} from './identity-command.js';
export type { IdentityIssueOptions, IdentityReport } from './identity-command.js';
export { UsageError, reportError, parseDuration } from './io.js';
export type { CliIo } from './io.js';
