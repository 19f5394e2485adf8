/**
 * POSIX path normalisation for argument constraints. It is lexical — it never touches a file
 * system — so a symbolic link inside an allowed folder that points outside it is not seen here:
 * the server's own sandbox must resolve links (`realpath`) and check again.
 */

/** MAX_PATH_LENGTH is the longest path value a `glob` constraint accepts (PATH_MAX on Linux). */
export const MAX_PATH_LENGTH = 4096;

/** NormalizedPath is the outcome of {@link normalizePosixPath}: the path, or why it was refused. */
export type NormalizedPath = { readonly ok: true; readonly path: string } | { readonly ok: false; readonly reason: string };

/**
 * normalizePosixPath turns an absolute POSIX path into its lexical normal form: `//` collapsed,
 * `.` segments dropped, `..` applied, no trailing slash (`/` for the root). It refuses, rather
 * than repairs: a relative path (the server would resolve it against a directory the relay does
 * not know), a NUL byte, a backslash (a separator for servers on Windows), a `..` that would
 * climb above the root (`/../etc` is not quietly `/etc`), and paths over {@link MAX_PATH_LENGTH}.
 * Nothing is decoded: `%2e%2e` is a file name of six characters, not `..`.
 *
 * @example
 * normalizePosixPath('/data/./reports//2024/../q1.csv'); // { ok: true, path: '/data/reports/q1.csv' }
 * normalizePosixPath('/data/../../etc/passwd');          // { ok: false, reason: 'climbs above the root' }
 */
export function normalizePosixPath(raw: string): NormalizedPath {
  const segs = pathSegments(raw);
  return typeof segs === 'string' ? { ok: false, reason: segs } : { ok: true, path: `/${segs.join('/')}` };
}

/**
 * pathSegments is {@link normalizePosixPath} without the join: the normalised segments (`[]` for
 * the root), or the reason the path is refused.
 * @internal
 */
export function pathSegments(raw: string): string[] | string {
  if (raw.length > MAX_PATH_LENGTH) return `is longer than ${MAX_PATH_LENGTH} characters`;
  if (raw.includes('\0')) return 'contains a NUL byte';
  if (raw.includes('\\')) return 'contains a backslash';
  if (raw.charCodeAt(0) !== 47 /* / */) return 'is not an absolute path';
  const out: string[] = [];
  for (const seg of raw.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) return 'climbs above the root';
      out.pop();
      continue;
    }
    out.push(seg);
  }
  return out;
}
