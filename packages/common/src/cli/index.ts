export { UsageError, reportError, isCodedError } from './report.js';
export type { CliIo, CodedError, ReportOptions } from './report.js';
