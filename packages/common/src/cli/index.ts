export { UsageError, reportError, isCodedError } from './report.js';
export type { CliIo, CodedError, ReportOptions } from './report.js';
export { LOG_LEVELS, logLevel, logLevelHelp } from './log-level.js';
export type { LogLevel } from './log-level.js';
