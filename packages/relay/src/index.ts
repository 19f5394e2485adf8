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
export { compilePolicy, normalizeSerial, PolicySnapshot, SERVER_NAME_PATTERN } from './policy/compile.js';
export type { CompileOptions, CompiledRule, CompiledServer, CompiledZone, RevocationList, CallKind, ArgRule } from './policy/compile.js';
export {
  mayUseServer,
  toolDecision,
  serverRequestAllowed,
  connectorMayServe,
  isConnector,
  matchingRules,
  PolicyScope,
  resourceDecision,
  promptDecision,
  revocationDecision,
  zoneDecision,
  checkArguments,
} from './policy/decide.js';
export type { CallGuard, ArgRefusal } from './policy/decide.js';
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
export { PolicyStore, loadPolicyFile, parsePolicyText } from './policy/store.js';
export type { PolicyReloadResult, PolicySwapListener, PolicyValidator } from './policy/store.js';
export { explainToolDecision } from './policy/explain.js';
export type { Explanation } from './policy/explain.js';
export { normalizeResourceUri, compileUriGlob, MAX_URI_LENGTH } from './policy/uri-glob.js';
export type { NormalizedUri, UriGlob } from './policy/uri-glob.js';
export { PolicyFileWatcher } from './policy/watch.js';
export type { PolicyWatchOptions } from './policy/watch.js';
export type { JwtSignerOptions, GuardConfig } from './session/guard-config.js';
export type { PinsOptions } from './session/pin-runtime.js';
export { MAX_BACKEND_JWT_TTL_SECONDS } from './session/guard-runtime.js';
export type { CatalogServer } from './listener/catalog.js';
export { MemoryAuditSink } from './audit/sink.js';
export type { AuditSink, LazyAuditRecord, RelayAuditDurability } from './audit/sink.js';
export { TrailAuditSink } from './audit/trail-sink.js';
export type { TrailAuditSinkOptions } from './audit/trail-sink.js';
export type { RelayAuditConfig } from './audit/config.js';
export type { RelayAuditOptions } from './audit/open.js';
export type { AuditMetricsSnapshot } from './audit/metrics.js';
export { Registry } from './registry.js';
export type { RoutableLink } from './registry.js';
export type { RelayMetricsSnapshot, UpgradeRefusal, DenyReason } from './metrics.js';
export { validateStrictJson } from './internal/strict-json.js';
export type { StrictJsonResult } from './internal/strict-json.js';
export { relayCommand, runRelay } from './cli/relay-command.js';
export type { RunRelayOptions, RunRelayDeps, SignalSource } from './cli/relay-command.js';
export { policyCommand, runPolicyCheck } from './cli/policy-command.js';
export type { PolicyCheckOptions } from './cli/policy-command.js';
export { toolsCommand, runToolsList, runToolsApprove, DEFAULT_PINS_PATH } from './cli/tools-command.js';
export type { ToolsOptions, ToolsApproveOptions } from './cli/tools-command.js';
