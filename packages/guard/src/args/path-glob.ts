import { pathSegments } from './posix-path.js';

/**
 * Globs over normalised absolute paths. A pattern is split into segments at `/`: `**` as a whole
 * segment matches any number of segments (none included), `*` inside a segment matches any run of
 * characters except `/` (none included, dot-files included), every other character matches itself
 * exactly (no `?`, `[…]` or `{a,b}`; no case folding, no Unicode normalisation). `/data/**` thus
 * matches `/data`, `/data/a` and `/data/a/b/c`; `/data/*.csv` matches `/data/x.csv` only.
 */

type SegmentMatcher = (segment: string) => boolean;
const GLOBSTAR: unique symbol = Symbol('**');

/** PathGlob matches normalised paths against one pattern; built once when a policy loads (see `normalizePosixPath`). */
export interface PathGlob {
  readonly pattern: string;
  /** matches tests a path already normalised by {@link normalizePosixPath}. */
  matches(path: string): boolean;
  /** matchesSegments tests the segments of a normalised path (`[]` for the root). */
  matchesSegments(segments: readonly string[]): boolean;
}

// Matching a segment is linear: the first literal part must be a prefix, the last a suffix, and
// the parts between are found left to right (leftmost is always a safe choice).
function segmentMatcher(seg: string): SegmentMatcher {
  if (!seg.includes('*')) return (s) => s === seg;
  const parts = seg.split('*');
  const pre = parts[0] as string;
  const suf = parts[parts.length - 1] as string;
  const mid = parts.slice(1, -1).filter((p) => p.length > 0);
  const min = pre.length + suf.length + mid.reduce((a, m) => a + m.length, 0);
  return (s) => {
    if (s.length < min || !s.startsWith(pre) || !s.endsWith(suf)) return false;
    let at = pre.length;
    const stop = s.length - suf.length;
    for (const m of mid) {
      const i = s.indexOf(m, at);
      if (i < 0 || i + m.length > stop) return false;
      at = i + m.length;
    }
    return true;
  };
}

/**
 * compilePathGlob builds the matcher for `pattern`, which must be an absolute path without `.` or
 * `..` segments, NUL bytes or backslashes, and with `**` only as a whole segment. Throws a
 * `TypeError` naming the rule otherwise (the argument-constraint compiler turns it into a
 * `GUARD_ERR_ARG_SPEC` with the key path).
 */
export function compilePathGlob(pattern: string): PathGlob {
  if (typeof pattern !== 'string' || pattern.length === 0) throw new TypeError('a glob must be a non-empty string');
  if (pattern.charCodeAt(0) !== 47) throw new TypeError(`glob "${pattern}" must be an absolute path (start with /)`);
  if (pattern.includes('\0') || pattern.includes('\\')) throw new TypeError(`glob "${pattern}" must not contain NUL or backslash`);
  const segs: (SegmentMatcher | typeof GLOBSTAR)[] = [];
  for (const seg of pattern.split('/')) {
    if (seg === '') continue;
    if (seg === '.' || seg === '..') throw new TypeError(`glob "${pattern}" must not contain . or .. segments`);
    if (seg === '**') {
      if (segs[segs.length - 1] !== GLOBSTAR) segs.push(GLOBSTAR);
      continue;
    }
    if (seg.includes('**')) throw new TypeError(`glob "${pattern}": ** must be a whole path segment`);
    segs.push(segmentMatcher(seg));
  }
  return Object.freeze({
    pattern,
    matches: (path: string) => matchSegments(segs, path === '/' ? [] : path.slice(1).split('/')),
    matchesSegments: (segments: readonly string[]) => matchSegments(segs, segments),
  });
}

// Wildcard matching over segments with backtracking to the last `**` only: O(segments × pattern).
function matchSegments(pat: readonly (SegmentMatcher | typeof GLOBSTAR)[], segs: readonly string[]): boolean {
  let p = 0;
  let s = 0;
  let starP = -1;
  let starS = 0;
  while (s < segs.length) {
    const m = pat[p];
    if (m === GLOBSTAR) {
      starP = p++;
      starS = s;
    } else if (m !== undefined && m(segs[s] as string)) {
      p++;
      s++;
    } else if (starP >= 0) {
      p = starP + 1;
      s = ++starS;
    } else return false;
  }
  while (pat[p] === GLOBSTAR) p++;
  return p === pat.length;
}

/** matchPathGlob normalises `raw` and tests it against `glob`; a path refused by normalisation never matches. */
export function matchPathGlob(glob: PathGlob, raw: string): boolean {
  const segs = pathSegments(raw);
  return typeof segs !== 'string' && glob.matchesSegments(segs);
}
