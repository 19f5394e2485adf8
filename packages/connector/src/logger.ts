/**
 * Logger is the structured logger the connector writes to: a subset of pino's API, so a pino
 * logger fits as is. The library is silent unless given one; only the CLI makes the root logger.
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
