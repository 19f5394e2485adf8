export { AuditError, AuditUnavailableError, isAuditError } from './errors.js';
export type { AuditErrorCode } from './errors.js';
export { sha256Hex, digestArguments, encodeRecord, checkLine } from './chain.js';
export type { EncodedRecord, LineCheck } from './chain.js';
export { AUDIT_RECORD_TYPES, GENESIS_HASH } from './records.js';
export type {
  AuditDecision,
  AuditSessionRef,
  AuditSessionOpen,
  AuditSessionResume,
  AuditSessionClose,
  AuditEgressDenied,
  AuditRequest,
  AuditResponse,
  AuditPolicyReload,
  AuditPinKind,
  AuditPinDrift,
  AuditPinApproval,
  AuditLinkUp,
  AuditLinkDown,
  AuditRevocation,
  AuditConnectionRefused,
  AuditIdentityRenew,
  AuditIdentityEnroll,
  AuditIdentityReauth,
  AuditCheckpoint,
  AuditRecordInput,
  AuditRecordBody,
  AuditChainFields,
  AuditRecord,
  AuditRecordType,
} from './records.js';
export {
  AUDIT_KEY_FILES,
  AuditPublicKey,
  AuditSigningKey,
  auditKeyId,
  checkpointMessage,
  generateAuditKey,
  writeAuditKeyFiles,
  loadAuditSigningKey,
  loadAuditPublicKey,
} from './keys.js';
export type { AuditKeyPem } from './keys.js';
export { AuditTrail } from './trail.js';
export type { AuditDurability, AuditTrailOptions, AuditAppendResult, AuditBatchTiming, AuditHealth, AuditStats } from './trail.js';
export type { AuditRecovery } from './internal/resume.js';
export { verifyAuditTrail } from './verify.js';
export type { AuditProblem, AuditVerifyOptions, AuditVerifyResult } from './verify.js';
export { rotatedFileName, checkpointFileName, parseRotatedFileName, listTrailFiles } from './files.js';
export { nodeAuditFs } from './fs-layer.js';
export type { AuditFs, AuditFileHandle } from './fs-layer.js';
