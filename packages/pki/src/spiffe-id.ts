import { PkiError, type PkiErrorCode } from './errors.js';

const SCHEME_PREFIX = 'spiffe://';
const MAX_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN_BYTES = 255;

// Lookup tables are faster than a regex per character on the hot path (policy, authorizers).
const TD_CHARS = charTable('abcdefghijklmnopqrstuvwxyz0123456789.-_');
const PATH_CHARS = charTable('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_');

function charTable(chars: string): Uint8Array {
  const t = new Uint8Array(128);
  for (const c of chars) t[c.charCodeAt(0)] = 1;
  return t;
}

function fail(code: PkiErrorCode, input: string, rule: string): never {
  throw new PkiError(code, `spiffeid: ${rule}: ${JSON.stringify(truncate(input))}`);
}

let makeTrustDomain: (name: string) => TrustDomain;

function truncate(s: string): string {
  return s.length > 120 ? `${s.slice(0, 120)}…` : s;
}

function checkTrustDomain(td: string, input: string): void {
  if (td.length === 0) fail('PKI_ERR_ID_TRUST_DOMAIN_EMPTY', input, 'trust domain is missing');
  // userinfo may hold a ':' (user:password@host): name it before the ':' reads as a port.
  if (td.includes('@')) fail('PKI_ERR_ID_USERINFO', input, 'trust domain must not contain userinfo');
  // ASCII-only check first, so the byte length equals the string length below.
  for (let i = 0; i < td.length; i++) {
    const c = td.charCodeAt(i);
    if (c < 128 && TD_CHARS[c] === 1) continue;
    if (c === 0x40 /* @ */) fail('PKI_ERR_ID_USERINFO', input, 'trust domain must not contain userinfo');
    if (c === 0x3a /* : */) fail('PKI_ERR_ID_PORT', input, 'trust domain must not contain a port');
    if (c === 0x25 /* % */) fail('PKI_ERR_ID_PERCENT_ENCODED', input, 'trust domain must not be percent-encoded');
    fail(
      'PKI_ERR_ID_TRUST_DOMAIN_CHARS',
      input,
      'trust domain characters are limited to lowercase letters, digits, dots, dashes and underscores',
    );
  }
  if (td.length > MAX_TRUST_DOMAIN_BYTES) {
    fail('PKI_ERR_ID_TRUST_DOMAIN_TOO_LONG', input, `trust domain must be at most ${MAX_TRUST_DOMAIN_BYTES} bytes`);
  }
}

function checkPath(path: string, input: string): void {
  // path is '' (root ID) or starts with '/'.
  if (path.length === 0) return;
  let segStart = 1;
  for (let i = 1; i <= path.length; i++) {
    const c = i < path.length ? path.charCodeAt(i) : 0x2f;
    if (c === 0x2f /* / */) {
      const len = i - segStart;
      if (len === 0) {
        if (i === path.length) fail('PKI_ERR_ID_TRAILING_SLASH', input, 'path must not end with a slash');
        fail('PKI_ERR_ID_EMPTY_SEGMENT', input, 'path must not contain empty segments');
      }
      if ((len === 1 && path.charCodeAt(segStart) === 0x2e) || (len === 2 && path.startsWith('..', segStart))) {
        fail('PKI_ERR_ID_DOT_SEGMENT', input, 'path must not contain "." or ".." segments');
      }
      segStart = i + 1;
      continue;
    }
    if (c < 128 && PATH_CHARS[c] === 1) continue;
    if (c === 0x3f /* ? */) fail('PKI_ERR_ID_QUERY', input, 'a SPIFFE ID must not contain a query');
    if (c === 0x23 /* # */) fail('PKI_ERR_ID_FRAGMENT', input, 'a SPIFFE ID must not contain a fragment');
    if (c === 0x25 /* % */) fail('PKI_ERR_ID_PERCENT_ENCODED', input, 'path must not be percent-encoded');
    fail(
      'PKI_ERR_ID_PATH_CHARS',
      input,
      'path segment characters are limited to letters, digits, dots, dashes and underscores',
    );
  }
}

/**
 * TrustDomain is a validated SPIFFE trust domain name (`example.org`). Instances only exist in a
 * valid state; compare them with {@link TrustDomain.equals} or by `name`.
 */
export class TrustDomain {
  /** name is the trust domain in its canonical (and only accepted) lowercase form. */
  readonly name: string;

  private constructor(name: string) {
    this.name = name;
  }

  static {
    makeTrustDomain = (name) => new TrustDomain(name);
  }

  /**
   * TrustDomain.parse accepts a bare trust domain name (`example.org`) or a SPIFFE ID, whose trust
   * domain it returns. Throws {@link PkiError} naming the rule broken.
   */
  static parse(input: string): TrustDomain {
    if (input.startsWith(SCHEME_PREFIX)) return SpiffeId.parse(input).trustDomain;
    if (input.length === 0) fail('PKI_ERR_ID_TRUST_DOMAIN_EMPTY', input, 'trust domain is missing');
    if (input.includes('/')) {
      fail('PKI_ERR_ID_TRUST_DOMAIN_CHARS', input, 'a trust domain name must not contain a path');
    }
    checkTrustDomain(input, input);
    return makeTrustDomain(input);
  }

  /** idString returns the trust domain's root SPIFFE ID (`spiffe://example.org`). */
  idString(): string {
    return SCHEME_PREFIX + this.name;
  }

  /** TrustDomain.equals compares names byte for byte. */
  equals(other: TrustDomain): boolean {
    return this.name === other.name;
  }

  toString(): string {
    return this.name;
  }
}

/**
 * SpiffeId is a SPIFFE ID validated against every MUST of the SPIFFE-ID specification. Instances
 * are immutable and only made by {@link SpiffeId.parse} or {@link SpiffeId.fromPath}; IDs compare
 * byte for byte.
 *
 * @example
 * const id = SpiffeId.parse('spiffe://example.org/agent/support');
 * id.trustDomain.name; // 'example.org'
 * id.path;             // '/agent/support'
 */
export class SpiffeId {
  readonly trustDomain: TrustDomain;
  /** path is `''` for a trust domain's root ID, otherwise it starts with `/`. */
  readonly path: string;
  private readonly str: string;

  private constructor(td: TrustDomain, path: string, str: string) {
    this.trustDomain = td;
    this.path = path;
    this.str = str;
  }

  /** SpiffeId.parse validates `input` and returns the ID, or throws {@link PkiError}. */
  static parse(input: string): SpiffeId {
    if (input.length === 0) fail('PKI_ERR_ID_EMPTY', input, 'a SPIFFE ID must not be empty');
    if (!input.startsWith(SCHEME_PREFIX)) {
      fail('PKI_ERR_ID_SCHEME', input, 'scheme must be "spiffe" followed by "://"');
    }
    if (Buffer.byteLength(input, 'utf8') > MAX_ID_BYTES) {
      fail('PKI_ERR_ID_TOO_LONG', input, `a SPIFFE ID must be at most ${MAX_ID_BYTES} bytes`);
    }
    const rest = input.slice(SCHEME_PREFIX.length);
    let end = rest.length;
    for (let i = 0; i < rest.length; i++) {
      const c = rest.charCodeAt(i);
      if (c === 0x2f || c === 0x3f || c === 0x23) {
        end = i;
        break;
      }
    }
    const td = rest.slice(0, end);
    checkTrustDomain(td, input);
    const path = rest.slice(end);
    if (path.length > 0 && path.charCodeAt(0) !== 0x2f) {
      // The authority ended in '?' or '#'.
      fail(path.charCodeAt(0) === 0x3f ? 'PKI_ERR_ID_QUERY' : 'PKI_ERR_ID_FRAGMENT', input,
        path.charCodeAt(0) === 0x3f ? 'a SPIFFE ID must not contain a query' : 'a SPIFFE ID must not contain a fragment');
    }
    checkPath(path, input);
    return new SpiffeId(makeTrustDomain(td), path, input);
  }

  /** SpiffeId.fromPath builds `spiffe://<td><path>`; `path` must start with `/` (or be empty). */
  static fromPath(td: TrustDomain, path: string): SpiffeId {
    if (path !== '' && !path.startsWith('/')) {
      fail('PKI_ERR_ID_PATH_CHARS', path, 'path must start with "/"');
    }
    return SpiffeId.parse(SCHEME_PREFIX + td.name + path);
  }

  /** isRoot reports whether this is a trust domain's root ID (no path). */
  get isRoot(): boolean {
    return this.path === '';
  }

  /** SpiffeId.equals compares two IDs byte for byte. */
  equals(other: SpiffeId): boolean {
    return this.str === other.str;
  }

  /** memberOf reports whether the ID belongs to `td`. */
  memberOf(td: TrustDomain): boolean {
    return this.trustDomain.name === td.name;
  }

  toString(): string {
    return this.str;
  }

  toJSON(): string {
    return this.str;
  }
}

/** tryParseSpiffeId returns the parsed ID, or `undefined` when `input` is not a valid SPIFFE ID. */
export function tryParseSpiffeId(input: string): SpiffeId | undefined {
  try {
    return SpiffeId.parse(input);
  } catch {
    return undefined;
  }
}
