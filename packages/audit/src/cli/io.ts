import type { CodedError, ReportOptions } from '@switchboard/common/cli';
import type { AuditErrorCode } from '../errors.js';

// Codes that mean "the input was wrong" (exit 2): a file or key that cannot be read, a file that exists.
const INVALID_INPUT = new Set<string>(['AUDIT_ERR_FILE', 'AUDIT_ERR_KEY_INVALID', 'AUDIT_ERR_FILE_EXISTS'] satisfies AuditErrorCode[]);

/** AUDIT_REPORT classifies the audit commands' errors for `reportError`. */
export const AUDIT_REPORT: ReportOptions = Object.freeze({ invalidInput: (err: CodedError) => INVALID_INPUT.has(err.code), fallbackCode: 'ERR' });
