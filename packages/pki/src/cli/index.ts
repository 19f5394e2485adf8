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
export { parseDuration, PKI_REPORT } from './io.js';
