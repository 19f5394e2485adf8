import { AuditError } from '../errors.js';

/** CliIo is where a command writes; tests pass buffers, the CLI passes the process streams. */
export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
}

/** UsageError is invalid input found by a command itself (exit code 2). */
export class UsageError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'UsageError';
    this.code = code;
  }
}

// Codes that mean "the input was wrong" (exit 2); every other failure is a runtime failure (1).
const INVALID_INPUT = new Set<string>(['AUDIT_ERR_FILE', 'AUDIT_ERR_KEY_INVALID', 'AUDIT_ERR_FILE_EXISTS']);

/**
 * reportError prints `code: message` on stderr and returns the exit code: 2 for invalid input
 * (a file or key that cannot be read, a file that exists), 1 for a runtime failure.
 */
export function reportError(err: unknown, io: CliIo): number {
  if (err instanceof UsageError) {
    io.stderr.write(`${err.code}: ${err.message}\n`);
    return 2;
  }
  if (err instanceof AuditError) {
    io.stderr.write(`${err.code}: ${err.message}\n`);
    return INVALID_INPUT.has(err.code) ? 2 : 1;
  }
  const e = err as NodeJS.ErrnoException;
  io.stderr.write(`${e?.code ?? 'ERR'}: ${e?.message ?? String(err)}\n`);
  return 1;
}
