import { PkiError, type PkiErrorCode } from '../errors.js';

/** CliIo is where a command writes; tests pass buffers, the CLI passes the process streams. */
export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
  /** prompt asks for a secret on the terminal without echo; undefined when there is no terminal. */
  promptSecret?: ((question: string) => Promise<string>) | undefined;
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
const INVALID_INPUT = new Set<PkiErrorCode>([
  'PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN',
  'PKI_ERR_SVID_TTL_TOO_LONG',
  'PKI_ERR_SVID_ROOT_PATH',
  'PKI_ERR_CA_EXISTS',
  'PKI_ERR_FILE_EXISTS',
  'PKI_ERR_P12_PASSWORD_MISSING',
  'PKI_ERR_TOKEN_INVALID',
]);

/**
 * reportError prints `code: message` on stderr and returns the exit code: 2 for invalid input,
 * 1 for a runtime failure.
 */
export function reportError(err: unknown, io: CliIo): number {
  if (err instanceof UsageError) {
    io.stderr.write(`${err.code}: ${err.message}\n`);
    return 2;
  }
  if (err instanceof PkiError) {
    io.stderr.write(`${err.code}: ${err.message}\n`);
    return err.code.startsWith('PKI_ERR_ID_') || INVALID_INPUT.has(err.code) ? 2 : 1;
  }
  const e = err as NodeJS.ErrnoException;
  io.stderr.write(`${e?.code ?? 'ERR'}: ${e?.message ?? String(err)}\n`);
  return 1;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** parseDuration reads `90s`, `15m`, `1h`, `1h30m`, `2d` or a plain number of seconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const re = /(\d+)([smhd])/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    total += Number(m[1]) * (UNITS[m[2] as string] as number);
    matched = re.lastIndex;
  }
  if (matched !== t.length || t.length === 0 || total <= 0) {
    throw new UsageError('ERR_INVALID_DURATION', `${what} must look like 90s, 15m, 1h or 1h30m, got ${JSON.stringify(text)}`);
  }
  return total;
}
