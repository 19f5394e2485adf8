import { UsageError } from './report.js';

/** LOG_LEVELS are the values every command's `--log-level` takes (and `LOG_LEVEL` may hold). */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;

export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * logLevel is the one rule for every long-running command: `--log-level`, else `$LOG_LEVEL`, else
 * the command's own default. A `LOG_LEVEL` that is not a level is a {@link UsageError}
 * (`ERR_INVALID_LOG_LEVEL`, exit 2), not ignored.
 *
 * @example
 * logLevel(opts.logLevel, process.env, 'info'); // 'debug' when LOG_LEVEL=debug and no flag
 */
export function logLevel(flag: LogLevel | undefined, env: Record<string, string | undefined>, fallback: LogLevel): LogLevel {
  if (flag !== undefined) return flag;
  const fromEnv = env.LOG_LEVEL;
  if (fromEnv === undefined || fromEnv === '') return fallback;
  if (!(LOG_LEVELS as readonly string[]).includes(fromEnv)) {
    throw new UsageError('ERR_INVALID_LOG_LEVEL', `LOG_LEVEL=${JSON.stringify(fromEnv)} is not a log level (${LOG_LEVELS.join(', ')})`);
  }
  return fromEnv as LogLevel;
}

/** logLevelHelp is the `--log-level` description, naming the default the same way everywhere. */
export function logLevelHelp(fallback: LogLevel, extra = ''): string {
  return `log level${extra} (default: $LOG_LEVEL, else ${fallback})`;
}
