import { RelayConfigError } from '../errors.js';
import { SchemaViolation, formatPath, type PathSegment } from '@switchboard/common/config';

/** Locate maps a key path to its line and column in the source text. */
export type Locate = (p: readonly PathSegment[]) => { line: number; col: number } | undefined;

/**
 * withConfigErrors runs a validation step and turns a {@link SchemaViolation} into a
 * {@link RelayConfigError} naming the file, line and key path.
 */
export function withConfigErrors<T>(fn: () => T, source: string | undefined, locate: Locate | undefined): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SchemaViolation) {
      const pos = locate?.(err.path);
      const where = source ? `${source}${pos ? `:${pos.line}:${pos.col}` : ''}: ` : '';
      throw new RelayConfigError(`config: ${where}${formatPath(err.path)}: ${err.rule}`, {
        path: formatPath(err.path),
        ...(pos ? { line: pos.line } : {}),
        cause: err,
      });
    }
    if (err instanceof RelayConfigError && source && !err.message.startsWith(`config: ${source}`)) {
      throw new RelayConfigError(err.message.replace(/^config: /, `config: ${source}: `), { path: err.path, cause: err });
    }
    throw err;
  }
}

