/**
 * Logger is the structured logger the agent SDK writes to: a subset of pino's API. Libraries are
 * silent without one; the `agent` CLI makes a pino logger on stderr (stdout carries MCP).
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

function noop(): void {}

/** silentLogger is a {@link Logger} that drops everything. */
export const silentLogger: Logger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop, child: () => silentLogger });
