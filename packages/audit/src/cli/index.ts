export { auditCommand, runAuditVerify, runAuditTail, runAuditKeygen } from './audit-command.js';
export type { AuditVerifyCliOptions, AuditTailCliOptions, AuditKeygenCliOptions } from './audit-command.js';
export { UsageError, reportError } from './io.js';
export type { CliIo } from './io.js';
