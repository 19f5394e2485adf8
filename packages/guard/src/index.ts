export { GuardError, isGuardError } from './errors.js';
export type { GuardErrorCode } from './errors.js';

// Redaction
export { redactText, redactJsonValue, redactionMarker } from './redact/redact.js';
export type { TextRedaction, JsonRedaction, RedactionCounts, RedactJsonOptions } from './redact/redact.js';
export { BUILTIN_DETECTORS, BUILTIN_PROFILES, createProfile, getProfile, combineProfiles } from './redact/profiles.js';
export type { RedactionProfile, SecretKind } from './redact/profiles.js';
export { anchoredDetector, isAlnum, isWord, isBase64Url } from './redact/detector.js';
export type { Detector, Span, AnchoredDetectorInit, CharTest } from './redact/detector.js';
export { luhnValid, cardScheme } from './redact/card.js';

// Tool pinning
export { toolDefinitionHash, validToolName, summarizeTool, TOOL_NAME_PATTERN } from './pinning/tool-definition.js';
export type { ToolDefinition, ToolSummary } from './pinning/tool-definition.js';
export { PinStore, PIN_MODES } from './pinning/pin-store.js';
export type {
  PinMode,
  ToolPin,
  PendingDefinition,
  DropReason,
  DroppedTool,
  PinEvent,
  ToolListEvaluation,
  ServerPins,
  PinStoreOptions,
} from './pinning/pin-store.js';

// Argument constraints
export { compileArgConstraints, ArgConstraints } from './args/constraints.js';
export type { ArgConstraintSpec, ToolArgsSpec, ArgConstraintName, ArgCheck, ArgConstraintOptions } from './args/constraints.js';
export { normalizePosixPath, MAX_PATH_LENGTH } from './args/posix-path.js';
export type { NormalizedPath } from './args/posix-path.js';
export { compilePathGlob, matchPathGlob } from './args/path-glob.js';
export type { PathGlob } from './args/path-glob.js';

// Rate limits
export { RateLimiter, compileRateRule } from './rate/rate-limiter.js';
export type { RateLimitSpec, RateRule, RateDecision, Release, RateLimiterOptions } from './rate/rate-limiter.js';
export { parseDuration, MAX_PERIOD_MS } from './rate/duration.js';
