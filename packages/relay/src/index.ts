export { RelayError, RelayConfigError, PolicyError, isRelayError } from './errors.js';
export type { RelayErrorCode } from './errors.js';
export { loadRelayConfig, parseRelayConfig } from './config/relay-config.js';
export type { RelayConfig } from './config/relay-config.js';
export { resolveLimits, DEFAULT_LIMITS, DEFAULT_ENFORCEMENT, DEFAULT_TIMING } from './config/limits.js';
export type { RelayLimits, EnforcementOptions, UnknownToolReply, RelayTiming } from './config/limits.js';
export { parseListenAddress } from './config/listen.js';
export type { ListenAddress } from './config/listen.js';
export { startRelay, Relay } from './relay.js';
export type { RelayOptions, StartRelayDeps, RelayCloseOptions } from './relay.js';
export { compilePolicy, normalizeSerial, PolicySnapshot } from './policy/compile.js';
export { SERVER_NAME_PATTERN } from '@switchboard/protocol';
export type { CompileOptions, CompiledRule, CompiledServer, CompiledZone, RevocationList, CallKind, ArgRule } from './policy/compile.js';
export {
  mayUseServer,
  toolDecision,
  serverRequestAllowed,
  connectorMayServe,
  isConnector,
  matchingRules,
  resourceDecision,
  promptDecision,
  revocationDecision,
  zoneDecision,
} from './policy/decide.js';
export type { PolicySubject } from './policy/decide.js';
export { PolicyScope, IdentityPolicy, checkArguments } from './policy/scope.js';
export type { CallPolicy, ArgRefusal } from './policy/scope.js';
export { SERVER_REQUEST_KINDS, PINNING_MODES } from './policy/document.js';
export type {
  Decision,
  PolicyDocument,
  PolicyRuleDocument,
  PolicyServerDocument,
  PolicyZoneDocument,
  PolicyRevokedDocument,
  AccessListDocument,
  ArgConstraintDocument,
  RateDocument,
  RedactDocument,
  PinningMode,
  ServerRequestKind,
} from './policy/document.js';
export { PolicyStore } from './policy/store.js';
export type { PolicySwapListener, PolicyValidator } from './policy/store.js';
export { parsePolicyText } from './policy/policy-text.js';
export { loadPolicyFile, PolicyFile } from './wiring/policy-file.js';
export type { PolicyReloadResult } from './wiring/policy-file.js';
export { explainToolDecision } from './policy/explain.js';
export type { Explanation } from './policy/explain.js';
export { normalizeResourceUri, compileUriGlob, MAX_URI_LENGTH } from './policy/uri-glob.js';
export type { NormalizedUri, UriGlob } from './policy/uri-glob.js';
export { PolicyFileWatcher } from './wiring/policy-file-watcher.js';
export type { PolicyWatchOptions } from './wiring/policy-file-watcher.js';
export { MAX_BACKEND_JWT_TTL_SECONDS } from './config/enforcement-config.js';
export type { JwtSignerOptions, PinsOptions, EnforcementConfig } from './config/enforcement-config.js';
export type { CatalogServer } from './listener/catalog.js';
export { MemoryAuditSink } from './audit/sink.js';
export type { AuditSink, LazyAuditRecord } from './audit/sink.js';
export { TrailAuditSink } from './audit/trail-sink.js';
export type { TrailAuditSinkOptions } from './audit/trail-sink.js';
export type { RelayAuditConfig, RelayAuditDurability } from './config/audit-config.js';
export type { RelayAuditOptions } from './audit/open.js';
export type { AuditMetricsSnapshot } from './audit/metrics.js';
export { Registry } from './link/registry.js';
export type { RoutableLink } from './link/registry.js';
export type { RelayMetricsSnapshot, UpgradeRefusal, DenyReason } from './metrics.js';
export { RelayMetrics, LATENCY_BUCKETS, SETUP_BUCKETS } from './metrics.js';
export { validateStrictJson } from './message/strict-json.js';
export type { StrictJsonResult } from './message/strict-json.js';
export { relayCommand, runRelay } from './cli/relay-command.js';
export type { RunRelayOptions, RunRelayDeps, SignalSource } from './cli/relay-command.js';
export { policyCommand, runPolicyCheck } from './cli/policy-command.js';
export type { PolicyCheckOptions } from './cli/policy-command.js';
export { toolsCommand, runToolsList, runToolsApprove, DEFAULT_PINS_PATH } from './cli/tools-command.js';
export { statusCommand, runStatus, formatStatus, needsAttention, STATUS_ATTENTION } from './cli/status-command.js';
export type { StatusOptions } from './cli/status-command.js';
export type { RelayInventory, InventoryServerView, InventoryToolView, ToolState, AuditView } from './console/inventory-view.js';
export type { LiveSession, ConsoleEvent } from './console/observatory.js';
export type { ToolsOptions, ToolsApproveOptions } from './cli/tools-command.js';
