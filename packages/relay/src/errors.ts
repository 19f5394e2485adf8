/**
 * Local error codes of `@switchboard/relay`. Wire codes (WebSocket close codes, JSON-RPC error
 * codes, HTTP statuses) live in `@switchboard/protocol` and are listed in `docs/errors.md`; these
 * string codes are what the relay throws to its own callers (the CLI, tests, embedders).
 */
export type RelayErrorCode =
  /** relay.yaml (or the options given to startRelay) breaks a rule. */
  | 'RELAY_ERR_CONFIG'
  /** policy.yaml breaks a rule; the old policy, if any, stays in force. */
  | 'RELAY_ERR_POLICY'
  /** the relay's own identity (svid.pem, svid_key.pem, bundle.pem) cannot be loaded or used. */
  | 'RELAY_ERR_IDENTITY'
  /** a listener could not bind its address. */
  | 'RELAY_ERR_LISTEN'
  /** the audit trail cannot be opened or written. */
  | 'RELAY_ERR_AUDIT';

/**
 * RelayError is the base class of every error the relay throws to its callers. `code` is stable;
 * `message` starts with the module that raised it (`config: …`, `policy: …`).
 */
export class RelayError extends Error {
  readonly code: RelayErrorCode;
  /** retryable tells a supervisor whether repeating the same operation can succeed. */
  readonly retryable: boolean;

  constructor(code: RelayErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RelayError';
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }
}

/**
 * RelayConfigError is raised for an invalid relay.yaml or invalid startRelay options. `path` is
 * the key path of the offending value (`limits.maxDepth`), `line` its 1-based line when known.
 */
export class RelayConfigError extends RelayError {
  readonly path: string;
  readonly line: number | undefined;

  constructor(message: string, options: { path?: string; line?: number; cause?: unknown } = {}) {
    super('RELAY_ERR_CONFIG', message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RelayConfigError';
    this.path = options.path ?? '';
    this.line = options.line;
  }
}

/**
 * PolicyError is raised for an invalid policy document. `path` is the key path of the offending
 * value (`rules[2].tools.allow[0]`), `line` its 1-based line in the file when known.
 */
export class PolicyError extends RelayError {
  readonly path: string;
  readonly line: number | undefined;

  constructor(message: string, options: { path?: string; line?: number; cause?: unknown } = {}) {
    super('RELAY_ERR_POLICY', message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PolicyError';
    this.path = options.path ?? '';
    this.line = options.line;
  }
}

/** isRelayError narrows `err` to a {@link RelayError}, optionally with a given code. */
export function isRelayError(err: unknown, code?: RelayErrorCode): err is RelayError {
  return err instanceof RelayError && (code === undefined || err.code === code);
}
