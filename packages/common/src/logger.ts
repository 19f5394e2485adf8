/**
 * Logger is the structured logger Switchboard's libraries write to: the subset of pino's API they
 * use, so a pino logger fits as is. Libraries are silent unless given one; only a CLI makes the
 * root logger.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

function noop(): void {}

/** silentLogger is a {@link Logger} that drops everything: the default of every library entry point. */
export const silentLogger: Logger = Object.freeze({
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
});
