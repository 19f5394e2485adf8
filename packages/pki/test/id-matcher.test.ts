import { describe, expect, it } from 'vitest';
import { PkiError, type PkiErrorCode } from '../src/errors.js';
import { matchExact, matchGlob, matchMemberOf, matchPathPrefix, parseIdMatcher, type IdMatcher } from '../src/id-matcher.js';
import { SpiffeId, TrustDomain } from '../src/spiffe-id.js';

function codeOf(fn: () => unknown): PkiErrorCode | string {
  try {
    fn();
  } catch (err) {
    return err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`;
  }
  return 'no error';
}

function matches(m: IdMatcher, id: string): boolean {
  return m.matches(SpiffeId.parse(id));
}

describe('matchExact', () => {
  const m = matchExact('spiffe://example.org/agent/support');

  it.each<[string, boolean]>([
    ['spiffe://example.org/agent/support', true],
    ['spiffe://example.org/agent/Support', false],
    ['spiffe://example.org/agent/support/x', false],
    ['spiffe://example.org/agent/supporter', false],
    ['spiffe://example.org/agent', false],
    ['spiffe://example.com/agent/support', false],
    ['spiffe://example.org', false],
  ])('%s → %s', (id, want) => {
    expect(matches(m, id)).toBe(want);
  });

  it('takes a parsed ID as well as a string', () => {
    const byId = matchExact(SpiffeId.parse('spiffe://example.org/a'));
    expect(byId.kind).toBe('exact');
    expect(byId.pattern).toBe('spiffe://example.org/a');
    expect(matches(byId, 'spiffe://example.org/a')).toBe(true);
    expect(matches(byId, 'spiffe://example.org/A')).toBe(false);
  });

  it('refuses an invalid ID with its rule code', () => {
    expect(codeOf(() => matchExact('spiffe://Example.org/a'))).toBe('PKI_ERR_ID_TRUST_DOMAIN_CHARS');
    expect(codeOf(() => matchExact('spiffe://example.org/a/'))).toBe('PKI_ERR_ID_TRAILING_SLASH');
  });
});

describe('matchMemberOf', () => {
  it.each<[string, boolean]>([
    ['spiffe://example.org/agent/support', true],
    ['spiffe://example.org/x', true],
    ['spiffe://example.org', true],
    ['spiffe://example.com/agent/support', false],
    ['spiffe://example.org.evil.com/x', false],
    ['spiffe://sub.example.org/x', false],
    ['spiffe://org/example.org', false],
  ])('%s → %s', (id, want) => {
    expect(matches(matchMemberOf('example.org'), id)).toBe(want);
    expect(matches(matchMemberOf(TrustDomain.parse('example.org')), id)).toBe(want);
  });

  it('has kind "member"', () => {
    expect(matchMemberOf('example.org').kind).toBe('member');
  });

  it('refuses an invalid trust domain', () => {
    expect(codeOf(() => matchMemberOf('Example.org'))).toBe('PKI_ERR_ID_TRUST_DOMAIN_CHARS');
    expect(codeOf(() => matchMemberOf(''))).toBe('PKI_ERR_ID_TRUST_DOMAIN_EMPTY');
  });
});

describe('matchPathPrefix (segment-aware)', () => {
  const m = matchPathPrefix('example.org', '/agent');

  it.each<[string, boolean]>([
    ['spiffe://example.org/agent', true],
    ['spiffe://example.org/agent/a', true],
    ['spiffe://example.org/agent/a/b', true],
    ['spiffe://example.org/agents', false],
    ['spiffe://example.org/agent-x', false],
    ['spiffe://example.org/agent.x', false],
    ['spiffe://example.org/Agent/a', false],
    ['spiffe://example.org/connector/agent', false],
    ['spiffe://example.org', false],
    ['spiffe://example.com/agent', false],
    ['spiffe://example.com/agent/a', false],
    ['spiffe://example.org.evil/agent/a', false],
  ])('/agent vs %s → %s', (id, want) => {
    expect(matches(m, id)).toBe(want);
  });

  it('has kind "prefix"', () => {
    expect(m.kind).toBe('prefix');
  });

  it('works with a multi-segment prefix', () => {
    const deep = matchPathPrefix(TrustDomain.parse('example.org'), '/agent/support');
    expect(matches(deep, 'spiffe://example.org/agent/support')).toBe(true);
    expect(matches(deep, 'spiffe://example.org/agent/support/eu')).toBe(true);
    expect(matches(deep, 'spiffe://example.org/agent/supporter')).toBe(false);
    expect(matches(deep, 'spiffe://example.org/agent')).toBe(false);
  });

  it.each<[string, PkiErrorCode]>([
    ['agent', 'PKI_ERR_ID_PATH_CHARS'],
    ['/agent/', 'PKI_ERR_ID_TRAILING_SLASH'],
    ['/agent/*', 'PKI_ERR_ID_PATH_CHARS'],
    ['/../agent', 'PKI_ERR_ID_DOT_SEGMENT'],
  ])('refuses prefix %j with %s', (prefix, code) => {
    expect(codeOf(() => matchPathPrefix('example.org', prefix))).toBe(code);
  });
});

describe('matchGlob', () => {
  it.each<[string, string, boolean]>([
    // "*" alone is exactly one segment
    ['spiffe://example.org/agent/*', 'spiffe://example.org/agent/a', true],
    ['spiffe://example.org/agent/*', 'spiffe://example.org/agent/support', true],
    ['spiffe://example.org/agent/*', 'spiffe://example.org/agent', false],
    ['spiffe://example.org/agent/*', 'spiffe://example.org/agent/a/b', false],
    ['spiffe://example.org/agent/*', 'spiffe://example.org/agents/a', false],
    ['spiffe://example.org/*/support', 'spiffe://example.org/agent/support', true],
    ['spiffe://example.org/*/support', 'spiffe://example.org/a/b/support', false],
    // "*" inside a segment: any run of path characters, never a "/"
    ['spiffe://example.org/agent/support-*', 'spiffe://example.org/agent/support-eu', true],
    ['spiffe://example.org/agent/support-*', 'spiffe://example.org/agent/support-', true],
    ['spiffe://example.org/agent/support-*', 'spiffe://example.org/agent/support', false],
    ['spiffe://example.org/agent/support-*', 'spiffe://example.org/agent/support-eu/x', false],
    ['spiffe://example.org/agent/support-*', 'spiffe://example.org/agent/xsupport-eu', false],
    ['spiffe://example.org/agent/*-bot', 'spiffe://example.org/agent/crm-bot', true],
    ['spiffe://example.org/agent/*-bot', 'spiffe://example.org/agent/crm-bots', false],
    // literal dots are literal, not regex wildcards
    ['spiffe://example.org/agent/v1.*', 'spiffe://example.org/agent/v1.2', true],
    ['spiffe://example.org/agent/v1.*', 'spiffe://example.org/agent/v1x2', false],
    // "**" is one or more whole segments
    ['spiffe://example.org/agent/**', 'spiffe://example.org/agent/a', true],
    ['spiffe://example.org/agent/**', 'spiffe://example.org/agent/a/b/c', true],
    ['spiffe://example.org/agent/**', 'spiffe://example.org/agent', false],
    ['spiffe://example.org/agent/**', 'spiffe://example.org/agents/a', false],
    ['spiffe://example.org/**/admin', 'spiffe://example.org/a/admin', true],
    ['spiffe://example.org/**/admin', 'spiffe://example.org/a/b/admin', true],
    ['spiffe://example.org/**/admin', 'spiffe://example.org/admin', false],
    ['spiffe://example.org/**', 'spiffe://example.org/x', true],
    ['spiffe://example.org/**', 'spiffe://example.org', false],
    // another trust domain never matches
    ['spiffe://example.org/agent/*', 'spiffe://example.com/agent/a', false],
    ['spiffe://example.org/**', 'spiffe://example.com/x', false],
    ['spiffe://example.org/**', 'spiffe://example.org.evil/x', false],
    ['spiffe://example.org/**', 'spiffe://sub.example.org/x', false],
    ['spiffe://example.org/**', 'spiffe://exampleaorg/x', false],
    // case matters in the path
    ['spiffe://example.org/agent/*', 'spiffe://example.org/Agent/a', false],
  ])('%s vs %s → %s', (pattern, id, want) => {
    const m = matchGlob(pattern);
    expect(m.kind).toBe('glob');
    expect(m.pattern).toBe(pattern);
    expect(matches(m, id)).toBe(want);
  });

  it('a pattern without a wildcard is an exact match', () => {
    const m = matchGlob('spiffe://example.org/agent/a');
    expect(m.kind).toBe('exact');
    expect(matches(m, 'spiffe://example.org/agent/a')).toBe(true);
    expect(matches(m, 'spiffe://example.org/agent/a/b')).toBe(false);
  });

  it.each<[string, string, PkiErrorCode]>([
    ['wildcard in the trust domain', 'spiffe://*.example.org/agent', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['wildcard as the trust domain', 'spiffe://*/agent', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['"**" inside a segment', 'spiffe://example.org/agent/a**', 'PKI_ERR_ID_PATH_CHARS'],
    ['invalid literal characters', 'spiffe://example.org/agent/a b*', 'PKI_ERR_ID_PATH_CHARS'],
    ['uppercase trust domain', 'spiffe://Example.org/*', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['trailing slash', 'spiffe://example.org/agent/*/', 'PKI_ERR_ID_TRAILING_SLASH'],
    ['empty segment', 'spiffe://example.org//*', 'PKI_ERR_ID_EMPTY_SEGMENT'],
    ['".." segment', 'spiffe://example.org/../*', 'PKI_ERR_ID_DOT_SEGMENT'],
    ['not a SPIFFE URI', 'https://example.org/*', 'PKI_ERR_ID_SCHEME'],
    ['no path', 'spiffe://example.org*', 'PKI_ERR_ID_SCHEME'],
  ])('refuses %s (%s) with %s', (_name, pattern, code) => {
    expect(codeOf(() => matchGlob(pattern))).toBe(code);
  });
});

describe('parseIdMatcher', () => {
  it.each<[string, IdMatcher['kind'], string, string]>([
    ['spiffe://example.org/agent/*', 'glob', 'spiffe://example.org/agent/a', 'spiffe://example.org/agent/a/b'],
    ['spiffe://example.org/agent/**', 'glob', 'spiffe://example.org/agent/a/b', 'spiffe://example.org/agent'],
    ['spiffe://example.org', 'member', 'spiffe://example.org/anything/at/all', 'spiffe://example.com/x'],
    ['spiffe://example.org/agent/a', 'exact', 'spiffe://example.org/agent/a', 'spiffe://example.org/agent/a/b'],
  ])('%s → %s', (pattern, kind, yes, no) => {
    const m = parseIdMatcher(pattern);
    expect(m.kind).toBe(kind);
    expect(matches(m, yes)).toBe(true);
    expect(matches(m, no)).toBe(false);
  });

  it.each<[string, PkiErrorCode]>([
    ['example.org/agent', 'PKI_ERR_ID_SCHEME'],
    ['spiffe://example.org/', 'PKI_ERR_ID_TRAILING_SLASH'],
    ['spiffe://Example.org/a', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['spiffe://*.org/a', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['', 'PKI_ERR_ID_EMPTY'],
  ])('refuses %j with %s', (pattern, code) => {
    expect(codeOf(() => parseIdMatcher(pattern))).toBe(code);
  });
});
