import { PkiError } from './errors.js';
import { SpiffeId, TrustDomain } from './spiffe-id.js';

/**
 * IdMatcher decides whether a SPIFFE ID matches a pattern. Matchers are built once (at policy load)
 * and called per connection or message, so `matches` does no parsing.
 */
export interface IdMatcher {
  /** kind tells how the pattern matches: exact ID, trust-domain membership, path prefix or glob. */
  readonly kind: 'exact' | 'member' | 'prefix' | 'glob';
  /** pattern is the source text the matcher was built from. */
  readonly pattern: string;
  matches(id: SpiffeId): boolean;
}

/** matchExact matches exactly one SPIFFE ID, byte for byte. */
export function matchExact(id: SpiffeId | string): IdMatcher {
  const want = (typeof id === 'string' ? SpiffeId.parse(id) : id).toString();
  return { kind: 'exact', pattern: want, matches: (x) => x.toString() === want };
}

/** matchMemberOf matches every ID in trust domain `td`. */
export function matchMemberOf(td: TrustDomain | string): IdMatcher {
  const name = (typeof td === 'string' ? TrustDomain.parse(td) : td).name;
  return { kind: 'member', pattern: `spiffe://${name}/**`, matches: (x) => x.trustDomain.name === name };
}

/**
 * matchPathPrefix matches IDs in `td` whose path equals `prefix` or continues it with a further
 * segment: `/agent` matches `/agent` and `/agent/a`, never `/agents`.
 */
export function matchPathPrefix(td: TrustDomain | string, prefix: string): IdMatcher {
  const base = SpiffeId.fromPath(typeof td === 'string' ? TrustDomain.parse(td) : td, prefix);
  const str = base.toString();
  const withSlash = `${str}/`;
  return {
    kind: 'prefix',
    pattern: withSlash,
    matches: (x) => {
      const s = x.toString();
      return s === str || s.startsWith(withSlash);
    },
  };
}

/**
 * matchGlob matches IDs against a pattern such as `spiffe://td/agent/support/*`. In a path segment,
 * `*` stands for any run of characters other than `/` (so `*` alone is exactly one segment); a
 * segment that is exactly `**` stands for one or more whole segments. The trust domain takes no
 * wildcards.
 */
export function matchGlob(pattern: string): IdMatcher {
  const m = /^spiffe:\/\/([^/]+)(\/.*)$/.exec(pattern);
  if (!m) throw new PkiError('PKI_ERR_ID_SCHEME', `spiffeid: glob must look like spiffe://<td>/<path>: ${JSON.stringify(pattern)}`);
  const td = TrustDomain.parse(m[1] as string);
  // Check the whole path once (empty segments, trailing slash), wildcards standing in as letters.
  SpiffeId.fromPath(td, (m[2] as string).replaceAll('*', 'x'));
  const segments = (m[2] as string).slice(1).split('/');
  let re = '';
  for (const seg of segments) {
    if (seg === '**') {
      re += '(?:/[A-Za-z0-9._-]+)+';
      continue;
    }
    if (seg.includes('**')) {
      throw new PkiError('PKI_ERR_ID_PATH_CHARS', `spiffeid: "**" must be a whole path segment: ${JSON.stringify(pattern)}`);
    }
    // Validate the literal parts as path characters by parsing them with '*' removed.
    const literal = seg.replaceAll('*', 'x');
    SpiffeId.fromPath(td, `/${literal}`);
    re += `/${seg.split('*').map(escapeRegExp).join('[A-Za-z0-9._-]*')}`;
    if (seg === '*') re = `${re.slice(0, -'[A-Za-z0-9._-]*'.length)}[A-Za-z0-9._-]+`;
  }
  const rx = new RegExp(`^${escapeRegExp(`spiffe://${td.name}`)}${re}$`);
  if (!pattern.includes('*')) return matchExact(pattern);
  return { kind: 'glob', pattern, matches: (x) => rx.test(x.toString()) };
}

/**
 * parseIdMatcher builds the matcher a policy pattern asks for: a pattern containing `*` is a glob,
 * a trust domain root ID (`spiffe://td`) matches the whole trust domain, anything else is exact.
 */
export function parseIdMatcher(pattern: string): IdMatcher {
  if (pattern.includes('*')) return matchGlob(pattern);
  const id = SpiffeId.parse(pattern);
  return id.isRoot ? matchMemberOf(id.trustDomain) : matchExact(id);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
