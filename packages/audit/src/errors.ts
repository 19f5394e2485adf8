/**
 * Error codes raised by `@switchboard/audit`. The full list with explanations is in
 * `docs/errors.md` (section "Audit").
 */
export type AuditErrorCode =
  /** the trail cannot record: a write or fsync failed, or it is closed; the relay fails closed */
  | 'AUDIT_ERR_UNAVAILABLE'
  /** the last complete line of the trail (or its checkpoint side file) does not check out at open */
  | 'AUDIT_ERR_CORRUPT_TAIL'
  /** the trail file or a directory cannot be opened, read or created */
  | 'AUDIT_ERR_FILE'
  /** a key file is missing, unreadable, or not an Ed25519 key of the expected kind */
  | 'AUDIT_ERR_KEY_INVALID'
  /** a key file to be written exists already */
  | 'AUDIT_ERR_FILE_EXISTS';

/**
 * AuditError is the base class of every error `@switchboard/audit` raises for a condition other
 * than a caller mistake (those are `TypeError`). `code` is stable; `message` starts with `audit:`.
 */
export class AuditError extends Error {
  readonly code: AuditErrorCode;
  /** retryable tells a supervisor whether repeating the same operation can succeed. */
  readonly retryable: boolean;

  constructor(code: AuditErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AuditError';
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }
}

/**
 * AuditUnavailableError (code `AUDIT_ERR_UNAVAILABLE`) rejects an append that was not, and will
 * never be, recorded durably: the trail failed (a write or fsync error; it stays failed until
 * reopened) or was closed. A relay in `strict` mode refuses the call it was about to record.
 */
export class AuditUnavailableError extends AuditError {
  /** reason says why the trail cannot record. */
  readonly reason: 'failed' | 'closed';

  constructor(reason: 'failed' | 'closed', message: string, options?: { cause?: unknown }) {
    super('AUDIT_ERR_UNAVAILABLE', message, { ...options, retryable: false });
    this.name = 'AuditUnavailableError';
    this.reason = reason;
  }
}

/** isAuditError narrows `err` to an {@link AuditError}, optionally with a given code. */
export function isAuditError(err: unknown, code?: AuditErrorCode): err is AuditError {
  return err instanceof AuditError && (code === undefined || err.code === code);
}
