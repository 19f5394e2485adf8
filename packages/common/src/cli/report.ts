/** CliIo is where a command writes; tests pass buffers, the CLI passes the process streams. */
export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env?: Record<string, string | undefined>;
  /** promptSecret asks for a secret on the terminal without echo; undefined when there is no terminal. */
  promptSecret?: ((question: string) => Promise<string>) | undefined;
}

/** UsageError is invalid input found by a command itself (exit code 2); `code` names the rule. */
export class UsageError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'UsageError';
    this.code = code;
  }
}

/** CodedError is any error that carries a stable string `code` (every package's error classes do). */
export interface CodedError extends Error {
  readonly code: string;
}

/** isCodedError reports whether `err` is an Error with a string `code`. */
export function isCodedError(err: unknown): err is CodedError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string';
}

/** ReportOptions tell {@link reportError} how one command classifies errors. */
export interface ReportOptions {
  /** invalidInput says which coded errors mean "the input was wrong" (exit 2); all others exit 1. */
  invalidInput?: (err: CodedError) => boolean;
  /** fallbackCode names an error without a code of its own (default `ERR_RUNTIME`). */
  fallbackCode?: string;
}

/**
 * reportError prints `code: message` on stderr and returns the exit code: 2 for a
 * {@link UsageError} or a coded error `invalidInput` accepts, 1 for every other failure.
 *
 * @example
 * catch (err) { return reportError(err, io, { invalidInput: (e) => e.code === 'PKI_ERR_CA_EXISTS' }); }
 */
export function reportError(err: unknown, io: Pick<CliIo, 'stderr'>, options: ReportOptions = {}): 1 | 2 {
  if (err instanceof UsageError) {
    io.stderr.write(`${err.code}: ${err.message}\n`);
    return 2;
  }
  if (isCodedError(err)) {
    io.stderr.write(`${err.code}: ${err.message}\n`);
    return options.invalidInput?.(err) === true ? 2 : 1;
  }
  const message = err instanceof Error ? err.message : String(err);
  io.stderr.write(`${options.fallbackCode ?? 'ERR_RUNTIME'}: ${message}\n`);
  return 1;
}
