import { describe, expect, it } from 'vitest';
import { logLevel, logLevelHelp, UsageError } from '../src/cli/index.js';

describe('logLevel: --log-level, else $LOG_LEVEL, else the default', () => {
  it('takes the flag over the environment, the environment over the default', () => {
    expect(logLevel('error', { LOG_LEVEL: 'debug' }, 'info')).toBe('error');
    expect(logLevel(undefined, { LOG_LEVEL: 'debug' }, 'info')).toBe('debug');
    expect(logLevel(undefined, {}, 'warn')).toBe('warn');
    expect(logLevel(undefined, { LOG_LEVEL: '' }, 'warn')).toBe('warn');
  });

  it('refuses a LOG_LEVEL that is not a level, naming it', () => {
    let err: unknown;
    try {
      logLevel(undefined, { LOG_LEVEL: 'verbose' }, 'info');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).code).toBe('ERR_INVALID_LOG_LEVEL');
    expect((err as UsageError).message).toBe('LOG_LEVEL="verbose" is not a log level (debug, info, warn, error, silent)');
  });

  it('describes the default the same way for every command', () => {
    expect(logLevelHelp('info')).toBe('log level (default: $LOG_LEVEL, else info)');
    expect(logLevelHelp('warn', ', to stderr')).toBe('log level, to stderr (default: $LOG_LEVEL, else warn)');
  });
});
