import type { CodedError, ReportOptions } from '@switchboard/common/cli';
import type { RelayErrorCode } from '../errors.js';

// Invalid input (exit 2): relay.yaml, policy.yaml or the identity files break a rule.
const INPUT_ERRORS: ReadonlySet<string> = new Set(['RELAY_ERR_CONFIG', 'RELAY_ERR_POLICY', 'RELAY_ERR_IDENTITY'] satisfies RelayErrorCode[]);

/** RELAY_REPORT classifies the relay commands' errors for `reportError`. */
export const RELAY_REPORT: ReportOptions = Object.freeze({ invalidInput: (err: CodedError) => INPUT_ERRORS.has(err.code), fallbackCode: 'RELAY_ERR_RUNTIME' });
