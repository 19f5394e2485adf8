/**
 * GuardErrorCode lists the error codes raised by `@switchboard/guard`. Each names the rule that
 * was broken; the list with explanations is in `docs/guard.md`. Caller mistakes (a non-string
 * passed where text is required) are plain `TypeError`s.
 */
export type GuardErrorCode =
  /** a redaction profile name is unknown, or a profile or detector definition is invalid */
  | 'GUARD_ERR_PROFILE'
  /** a JSON value is nested deeper than the redaction walk allows (the message is refused, not forwarded) */
  | 'GUARD_ERR_TOO_DEEP'
  /** a value cannot be written as canonical JSON (cycle, non-finite number, bigint, function) */
  | 'GUARD_ERR_NOT_JSON'
  /** an argument-constraint specification is invalid (unknown key, bad glob, regex that does not compile or may backtrack) */
  | 'GUARD_ERR_ARG_SPEC'
  /** a rate-limit specification is invalid (`calls` without `per`, unparseable duration, …) */
  | 'GUARD_ERR_RATE_SPEC'
  /** the pin store file cannot be read or does not have the expected shape */
  | 'GUARD_ERR_PIN_STORE'
  /** the pin store file cannot be written */
  | 'GUARD_ERR_PIN_STORE_WRITE';

/**
 * GuardError is the base class of every error `@switchboard/guard` raises. `code` is stable;
 * `message` starts with the module that raised it (`redact: …`, `pinning: …`, `args: …`, `rate: …`).
 * `path` names the offending key of a specification (`path.glob[1]`) when there is one.
 */
export class GuardError extends Error {
  readonly code: GuardErrorCode;
  /** retryable tells a supervisor whether repeating the same operation can succeed. */
  readonly retryable: boolean;
  /** path is the key path of the offending value in a specification, or `''`. */
  readonly path: string;

  constructor(code: GuardErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean; path?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GuardError';
    this.code = code;
    this.retryable = options?.retryable ?? false;
    this.path = options?.path ?? '';
  }
}

/** isGuardError narrows `err` to a {@link GuardError}, optionally with a given code. */
export function isGuardError(err: unknown, code?: GuardErrorCode): err is GuardError {
  return err instanceof GuardError && (code === undefined || err.code === code);
}
