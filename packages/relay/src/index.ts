export { RelayError, RelayConfigError, PolicyError, isRelayError } from './errors.js';
export type { RelayErrorCode } from './errors.js';
export {
  loadRelayConfig,
  parseRelayConfig,
  parseListenAddress,
  resolveLimits,
  DEFAULT_LIMITS,
  DEFAULT_ENFORCEMENT,
} from './config.js';
export type { RelayConfig, RelayLimits, EnforcementOptions, UnknownToolReply, ListenAddress } from './config.js';
export { startRelay, Relay } from './relay.js';
export type { RelayOptions, StartRelayDeps, RelayCloseOptions } from './relay.js';
export type { RelayTiming } from './session/context.js';
export { DEFAULT_TIMING } from './session/context.js';
export { compilePolicy, PolicySnapshot, SERVER_NAME_PATTERN } from './policy/compile.js';
export type { CompileOptions, CompiledRule, CompiledServer } from './policy/compile.js';
export {
  mayUseServer,
  toolDecision,
  serverRequestAllowed,
  connectorMayServe,
  isConnector,
  matchingRules,
  PolicyScope,
} from './policy/decide.js';
export { SERVER_REQUEST_KINDS } from './policy/document.js';
export type { Decision, PolicyDocument, PolicyRuleDocument, PolicyServerDocument, ServerRequestKind } from './policy/document.js';
export { PolicyStore, loadPolicyFile, parsePolicyText } from './policy/store.js';
export type { PolicyReloadResult, PolicySwapListener } from './policy/store.js';
export { MemoryAuditSink } from './audit/sink.js';
export type { AuditSink } from './audit/sink.js';
export { JsonlAuditSink, MAX_AUDIT_BACKLOG_BYTES } from './audit/jsonl-sink.js';
export type { AuditRecord, AuditRecordType, AuditSessionRef } from './audit/records.js';
export { Registry } from './registry.js';
export type { RoutableLink } from './registry.js';
export type { RelayMetricsSnapshot, UpgradeRefusal, DenyReason } from './metrics.js';
export { validateStrictJson } from './internal/strict-json.js';
export type { StrictJsonResult } from './internal/strict-json.js';
export { relayCommand, runRelay } from './cli/relay-command.js';
export type { RunRelayOptions, RunRelayDeps, SignalSource } from './cli/relay-command.js';
