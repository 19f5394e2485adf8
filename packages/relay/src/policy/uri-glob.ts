/**
 * Resource URIs in policy: normalisation before matching, and URI globs.
 *
 * An agent picks the URI of a `resources/read`, so it is normalised before a glob sees it: the
 * dot segments of its path are removed (RFC 3986 §5.2.4), so `file:///data/../etc/passwd` is
 * judged as `file:///etc/passwd`. A URI that could mean something else to the server than to the
 * relay is refused instead of repaired: a `..` that climbs above the root, a backslash, control
 * characters, and percent-encoded `.`, `/`, `\` or NUL (`%2e%2e%2f` is `../` to a server that
 * decodes before resolving).
 */

/** MAX_URI_LENGTH bounds the resource URIs the relay examines; longer ones are refused. */
export const MAX_URI_LENGTH = 8192;

/** NormalizedUri is a normalised URI, or why it was refused. */
export type NormalizedUri = { readonly ok: true; readonly uri: string } | { readonly ok: false; readonly reason: string };

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
// Percent-encodings of '.', '/', '\' and NUL: decoding them would change the path's structure.
const ENCODED_STRUCTURE = /%(?:2[eEfF]|5[cC]|00)/;
// C0 controls, DEL and the backslash.
const FORBIDDEN = /[\u0000-\u001f\u007f\\]/;

/**
 * normalizeResourceUri returns `uri` with the dot segments of its path removed, or the reason it
 * is refused (see the module comment). The scheme, authority, query and fragment are kept as
 * written; nothing is decoded or case-folded.
 *
 * @example
 * normalizeResourceUri('file:///data/./a/../b.txt'); // { ok: true, uri: 'file:///data/b.txt' }
 * normalizeResourceUri('file:///data/../../etc');    // { ok: false, reason: 'its path climbs above the root' }
 */
export function normalizeResourceUri(uri: string): NormalizedUri {
  if (uri.length === 0) return { ok: false, reason: 'is empty' };
  if (uri.length > MAX_URI_LENGTH) return { ok: false, reason: `is longer than ${MAX_URI_LENGTH} characters` };
  const scheme = SCHEME.exec(uri);
  if (scheme === null) return { ok: false, reason: 'has no scheme' };
  if (FORBIDDEN.test(uri)) return { ok: false, reason: 'contains a control character or a backslash' };
  if (ENCODED_STRUCTURE.test(uri)) return { ok: false, reason: 'percent-encodes ".", "/", "\\" or NUL' };
  let at = scheme[0].length;
  if (uri.startsWith('//', at)) {
    const end = firstOf(uri, at + 2, '/?#');
    at = end;
  }
  const pathEnd = firstOf(uri, at, '?#');
  const path = uri.slice(at, pathEnd);
  if (!path.includes('.')) return { ok: true, uri };
  const norm = removeDotSegments(path);
  if (norm === undefined) return { ok: false, reason: 'its path climbs above the root' };
  return { ok: true, uri: norm === path ? uri : uri.slice(0, at) + norm + uri.slice(pathEnd) };
}

function firstOf(s: string, from: number, chars: string): number {
  for (let i = from; i < s.length; i++) if (chars.includes(s[i] as string)) return i;
  return s.length;
}

/** removeDotSegments applies `.` and `..` segments; undefined when `..` would climb above the root. */
function removeDotSegments(path: string): string | undefined {
  const absolute = path.startsWith('/');
  const segs = path.split('/');
  if (absolute) segs.shift();
  const out: string[] = [];
  const last = segs.length - 1;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i] as string;
    if (seg === '.') {
      if (i === last) out.push('');
      continue;
    }
    if (seg === '..') {
      if (out.length === 0) return undefined;
      out.pop();
      if (i === last) out.push('');
      continue;
    }
    out.push(seg);
  }
  return (absolute ? '/' : '') + out.join('/');
}

const LITERAL = 0;
const STAR = 1;
const GLOBSTAR = 2;
type Token = { kind: typeof LITERAL; text: string } | { kind: typeof STAR | typeof GLOBSTAR };

/** UriGlob matches URIs against one pattern; built once per policy load. */
export interface UriGlob {
  readonly pattern: string;
  matches(uri: string): boolean;
}

/**
 * compileUriGlob builds a matcher for a resource URI pattern: `**` matches any run of characters
 * (`/` included), `*` any run without `/`; everything else matches itself, byte for byte.
 * `file:///data/**` matches every URI under `file:///data/`; `file:///data/*.csv` only the files
 * directly in it. Matching is O(pattern parts × URI length) — no backtracking.
 */
export function compileUriGlob(pattern: string): UriGlob {
  if (!pattern.includes('*')) return { pattern, matches: (u) => u === pattern };
  const tokens: Token[] = [];
  let i = 0;
  let lit = '';
  while (i < pattern.length) {
    if (pattern[i] === '*') {
      if (lit) tokens.push({ kind: LITERAL, text: lit });
      lit = '';
      const double = pattern[i + 1] === '*';
      i += double ? 2 : 1;
      while (pattern[i] === '*') i++;
      const prev = tokens[tokens.length - 1];
      if (prev !== undefined && prev.kind !== LITERAL) {
        // `*` next to `**` is `**`.
        if (double) tokens[tokens.length - 1] = { kind: GLOBSTAR };
        continue;
      }
      tokens.push({ kind: double ? GLOBSTAR : STAR });
      continue;
    }
    lit += pattern[i];
    i++;
  }
  if (lit) tokens.push({ kind: LITERAL, text: lit });
  return { pattern, matches: (u) => matchTokens(tokens, u) };
}

function matchTokens(tokens: readonly Token[], s: string): boolean {
  const n = s.length;
  // live[p] = 1 when the tokens so far can consume exactly s[0, p).
  let live = new Uint8Array(n + 1);
  let next = new Uint8Array(n + 1);
  live[0] = 1;
  for (const t of tokens) {
    next.fill(0);
    let any = false;
    if (t.kind === LITERAL) {
      const len = t.text.length;
      for (let p = 0; p + len <= n; p++) {
        if (live[p] === 1 && s.startsWith(t.text, p)) {
          next[p + len] = 1;
          any = true;
        }
      }
    } else if (t.kind === GLOBSTAR) {
      let p = 0;
      while (p <= n && live[p] === 0) p++;
      for (; p <= n; p++) {
        next[p] = 1;
        any = true;
      }
    } else {
      let on = false;
      for (let p = 0; p <= n; p++) {
        if (live[p] === 1) on = true;
        if (on) {
          next[p] = 1;
          any = true;
          if (s.charCodeAt(p) === 47 /* / */) on = false;
        }
      }
    }
    if (!any) return false;
    const swap = live;
    live = next;
    next = swap;
  }
  return live[n] === 1;
}

/** UriGlobSet matches a URI against several patterns and says which one matched first. */
export class UriGlobSet {
  private readonly globs: readonly UriGlob[];

  constructor(patterns: readonly string[]) {
    this.globs = patterns.map(compileUriGlob);
  }

  /** size is the number of patterns. */
  get size(): number {
    return this.globs.length;
  }

  /** match returns the first pattern that matches `uri`, or `undefined`. */
  match(uri: string): string | undefined {
    for (const g of this.globs) if (g.matches(uri)) return g.pattern;
    return undefined;
  }
}
