import { describe, expect, it } from 'vitest';
import { reportError, UsageError } from '../src/cli/index.js';

class CodedError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

function run(err: unknown, options?: Parameters<typeof reportError>[2]): { code: number; stderr: string } {
  let stderr = '';
  const code = reportError(err, { stderr: { write: (s: string) => (stderr += s) } }, options);
  return { code, stderr };
}

describe('reportError', () => {
  it.each([
    ['a usage error exits 2', new UsageError('ERR_INVALID_DURATION', '--ttl must look like 90s'), undefined, 2, 'ERR_INVALID_DURATION: --ttl must look like 90s\n'],
    ['a coded error the command calls invalid input exits 2', new CodedError('X_ERR_CONFIG', 'bad key'), { invalidInput: () => true }, 2, 'X_ERR_CONFIG: bad key\n'],
    ['any other coded error exits 1', new CodedError('X_ERR_IO', 'disk full'), { invalidInput: () => false }, 1, 'X_ERR_IO: disk full\n'],
    ['an errno error prints its code', Object.assign(new Error('no such file'), { code: 'ENOENT' }), undefined, 1, 'ENOENT: no such file\n'],
    ['an error without a code gets the fallback', new Error('boom'), { fallbackCode: 'RELAY_ERR_RUNTIME' }, 1, 'RELAY_ERR_RUNTIME: boom\n'],
    ['a thrown string is printed', 'odd', undefined, 1, 'ERR_RUNTIME: odd\n'],
  ])('%s', (_name, err, options, code, stderr) => {
    expect(run(err, options)).toEqual({ code, stderr });
  });
});
