export { auditCommand, runAuditVerify, runAuditTail, runAuditKeygen } from './audit-command.js';
export type { AuditVerifyCliOptions, AuditTailCliOptions, AuditKeygenCliOptions } from './audit-command.js';
export { AUDIT_REPORT } from './io.js';
