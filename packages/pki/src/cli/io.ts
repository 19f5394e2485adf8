import type { CodedError, ReportOptions } from '@switchboard/common/cli';
import { UsageError } from '@switchboard/common/cli';
import type { PkiErrorCode } from '../errors.js';

// Codes that mean "the input was wrong" (exit 2); every other failure is a runtime failure (1).
const INVALID_INPUT = new Set<string>([
  'PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN',
  'PKI_ERR_SVID_TTL_TOO_LONG',
  'PKI_ERR_SVID_ROOT_PATH',
  'PKI_ERR_CA_EXISTS',
  'PKI_ERR_FILE_EXISTS',
  'PKI_ERR_P12_PASSWORD_MISSING',
  'PKI_ERR_TOKEN_INVALID',
] satisfies PkiErrorCode[]);

/** PKI_REPORT classifies the pki commands' errors for `reportError`: bad IDs and refused inputs exit 2. */
export const PKI_REPORT: ReportOptions = Object.freeze({
  invalidInput: (err: CodedError) => err.code.startsWith('PKI_ERR_ID_') || INVALID_INPUT.has(err.code),
  fallbackCode: 'ERR',
});

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
