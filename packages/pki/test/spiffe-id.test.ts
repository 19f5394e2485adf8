import { describe, expect, it } from 'vitest';
import { PkiError, type PkiErrorCode } from '../src/errors.js';
import { SpiffeId, TrustDomain, tryParseSpiffeId } from '../src/spiffe-id.js';

// Every case names the SPIFFE-ID spec rule it exercises; each "breaks" row must come back with the
// exact code of that rule, each "keeps" row must parse and print back unchanged.

function codeOf(fn: () => unknown): PkiErrorCode | string {
  try {
    fn();
  } catch (err) {
    return err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`;
  }
  return 'no error';
}

const TD_255 = `${'a'.repeat(251)}.org`;
const TD_256 = `${'a'.repeat(252)}.org`;
const PREFIX = 'spiffe://example.org/';
// 'spiffe://example.org/' is 21 bytes; fill the rest of the 2048-byte budget with one long segment.
const ID_2048 = PREFIX + 'a'.repeat(2048 - PREFIX.length);
const ID_2049 = PREFIX + 'a'.repeat(2049 - PREFIX.length);

describe('SpiffeId.parse — breaks a rule', () => {
  it.each<[string, string, PkiErrorCode]>([
    // §2: scheme is exactly "spiffe" followed by "://", lowercase
    ['scheme missing', 'example.org/workload', 'PKI_ERR_ID_SCHEME'],
    ['http scheme', 'http://example.org/workload', 'PKI_ERR_ID_SCHEME'],
    ['https scheme', 'https://example.org/workload', 'PKI_ERR_ID_SCHEME'],
    ['uppercase scheme', 'SPIFFE://example.org/workload', 'PKI_ERR_ID_SCHEME'],
    ['mixed-case scheme', 'Spiffe://example.org/workload', 'PKI_ERR_ID_SCHEME'],
    ['single slash', 'spiffe:/x', 'PKI_ERR_ID_SCHEME'],
    ['no slashes', 'spiffe:example.org/x', 'PKI_ERR_ID_SCHEME'],
    ['leading space', ' spiffe://example.org/x', 'PKI_ERR_ID_SCHEME'],
    ['empty string', '', 'PKI_ERR_ID_EMPTY'],
    // §2.1: trust domain
    ['trust domain empty', 'spiffe://', 'PKI_ERR_ID_TRUST_DOMAIN_EMPTY'],
    ['trust domain empty, path present', 'spiffe:///workload', 'PKI_ERR_ID_TRUST_DOMAIN_EMPTY'],
    ['trust domain uppercase', 'spiffe://Example.org/workload', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['trust domain all uppercase', 'spiffe://EXAMPLE.ORG/workload', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['trust domain with "+"', 'spiffe://exa+mple.org/workload', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['trust domain with "*"', 'spiffe://*.example.org/workload', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['trust domain with space', 'spiffe://exa mple.org/workload', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['trust domain unicode', 'spiffe://exämple.org/workload', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['trust domain IPv6 literal', 'spiffe://[::1]/workload', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['trust domain with port', 'spiffe://example.org:8443/workload', 'PKI_ERR_ID_PORT'],
    ['trust domain with empty port', 'spiffe://example.org:/workload', 'PKI_ERR_ID_PORT'],
    ['root ID with port', 'spiffe://example.org:8443', 'PKI_ERR_ID_PORT'],
    ['userinfo', 'spiffe://user@example.org/workload', 'PKI_ERR_ID_USERINFO'],
    ['userinfo with password', 'spiffe://user:secret@example.org/workload', 'PKI_ERR_ID_USERINFO'],
    ['trust domain percent-encoded', 'spiffe://ex%61mple.org/workload', 'PKI_ERR_ID_PERCENT_ENCODED'],
    ['trust domain 256 bytes', `spiffe://${TD_256}/workload`, 'PKI_ERR_ID_TRUST_DOMAIN_TOO_LONG'],
    // §2.2: path
    ['path with space', 'spiffe://example.org/work load', 'PKI_ERR_ID_PATH_CHARS'],
    ['path with unicode', 'spiffe://example.org/café', 'PKI_ERR_ID_PATH_CHARS'],
    ['path with emoji', 'spiffe://example.org/agent/\u{1F600}', 'PKI_ERR_ID_PATH_CHARS'],
    ['path with "*"', 'spiffe://example.org/agent/*', 'PKI_ERR_ID_PATH_CHARS'],
    ['path with "~"', 'spiffe://example.org/~agent', 'PKI_ERR_ID_PATH_CHARS'],
    ['path with ":"', 'spiffe://example.org/agent:1', 'PKI_ERR_ID_PATH_CHARS'],
    ['path with "@"', 'spiffe://example.org/agent@x', 'PKI_ERR_ID_PATH_CHARS'],
    ['path with backslash', 'spiffe://example.org/a\\b', 'PKI_ERR_ID_PATH_CHARS'],
    ['path with NUL', 'spiffe://example.org/a\u0000b', 'PKI_ERR_ID_PATH_CHARS'],
    ['path with newline', 'spiffe://example.org/a\n', 'PKI_ERR_ID_PATH_CHARS'],
    ['path percent-encoded slash', 'spiffe://example.org/a%2Fb', 'PKI_ERR_ID_PERCENT_ENCODED'],
    ['path percent-encoded letter', 'spiffe://example.org/%61', 'PKI_ERR_ID_PERCENT_ENCODED'],
    ['empty segment', 'spiffe://example.org//workload', 'PKI_ERR_ID_EMPTY_SEGMENT'],
    ['empty segment in the middle', 'spiffe://example.org/a//b', 'PKI_ERR_ID_EMPTY_SEGMENT'],
    ['"." segment', 'spiffe://example.org/.', 'PKI_ERR_ID_DOT_SEGMENT'],
    ['".." segment', 'spiffe://example.org/..', 'PKI_ERR_ID_DOT_SEGMENT'],
    ['"." segment in the middle', 'spiffe://example.org/a/./b', 'PKI_ERR_ID_DOT_SEGMENT'],
    ['".." segment in the middle', 'spiffe://example.org/a/../b', 'PKI_ERR_ID_DOT_SEGMENT'],
    ['"." segment at the end', 'spiffe://example.org/a/.', 'PKI_ERR_ID_DOT_SEGMENT'],
    ['trailing slash on root', 'spiffe://example.org/', 'PKI_ERR_ID_TRAILING_SLASH'],
    ['trailing slash on path', 'spiffe://example.org/workload/', 'PKI_ERR_ID_TRAILING_SLASH'],
    ['query after path', 'spiffe://example.org/workload?x=1', 'PKI_ERR_ID_QUERY'],
    ['query after trust domain', 'spiffe://example.org?x=1', 'PKI_ERR_ID_QUERY'],
    ['fragment after path', 'spiffe://example.org/workload#frag', 'PKI_ERR_ID_FRAGMENT'],
    ['fragment after trust domain', 'spiffe://example.org#frag', 'PKI_ERR_ID_FRAGMENT'],
    // §2.3: whole ID
    ['ID of 2049 bytes', ID_2049, 'PKI_ERR_ID_TOO_LONG'],
  ])('%s (%j) → %s', (_name, input, code) => {
    expect(codeOf(() => SpiffeId.parse(input))).toBe(code);
    expect(tryParseSpiffeId(input)).toBeUndefined();
  });

  it('error messages start with the module name', () => {
    expect(() => SpiffeId.parse('http://example.org/x')).toThrow(/^spiffeid: /);
  });
});

describe('SpiffeId.parse — keeps the rules', () => {
  it.each<[string, string, string, string]>([
    ['simple ID', 'spiffe://example.org/workload', 'example.org', '/workload'],
    ['nested path', 'spiffe://example.org/agent/support/eu-1', 'example.org', '/agent/support/eu-1'],
    ['root ID', 'spiffe://example.org', 'example.org', ''],
    ['trust domain with digits, dash, underscore', 'spiffe://td-1_a.example9.org/x', 'td-1_a.example9.org', '/x'],
    ['single-label trust domain', 'spiffe://td/x', 'td', '/x'],
    ['path with uppercase letters', 'spiffe://example.org/Agent/A', 'example.org', '/Agent/A'],
    ['path with every allowed punctuation', 'spiffe://example.org/a.b-c_d', 'example.org', '/a.b-c_d'],
    ['segment that only starts with a dot', 'spiffe://example.org/.hidden', 'example.org', '/.hidden'],
    ['segment of three dots', 'spiffe://example.org/...', 'example.org', '/...'],
    ['segment "..x"', 'spiffe://example.org/..x', 'example.org', '/..x'],
    ['trust domain of exactly 255 bytes', `spiffe://${TD_255}/x`, TD_255, '/x'],
    ['ID of exactly 2048 bytes', ID_2048, 'example.org', ID_2048.slice('spiffe://example.org'.length)],
  ])('%s', (_name, input, td, path) => {
    const id = SpiffeId.parse(input);
    expect(id.toString()).toBe(input);
    expect(id.toJSON()).toBe(input);
    expect(id.trustDomain.name).toBe(td);
    expect(id.path).toBe(path);
    expect(id.isRoot).toBe(path === '');
    expect(tryParseSpiffeId(input)?.toString()).toBe(input);
  });

  it('the 2048-byte boundary is exact', () => {
    expect(Buffer.byteLength(ID_2048)).toBe(2048);
    expect(Buffer.byteLength(ID_2049)).toBe(2049);
  });
});

describe('SpiffeId equality', () => {
  it('compares byte for byte: a path differing only in case is another ID', () => {
    const upper = SpiffeId.parse('spiffe://example.org/A');
    const lower = SpiffeId.parse('spiffe://example.org/a');
    expect(upper.equals(lower)).toBe(false);
    expect(upper.toString()).not.toBe(lower.toString());
  });

  it('two parses of the same string are equal', () => {
    expect(SpiffeId.parse('spiffe://example.org/a').equals(SpiffeId.parse('spiffe://example.org/a'))).toBe(true);
  });

  it('the same path in another trust domain is another ID', () => {
    expect(SpiffeId.parse('spiffe://example.org/a').equals(SpiffeId.parse('spiffe://example.com/a'))).toBe(false);
  });

  it('memberOf checks the trust domain by name', () => {
    const id = SpiffeId.parse('spiffe://example.org/a');
    expect(id.memberOf(TrustDomain.parse('example.org'))).toBe(true);
    expect(id.memberOf(TrustDomain.parse('example.com'))).toBe(false);
    expect(id.memberOf(TrustDomain.parse('org'))).toBe(false);
  });
});

describe('SpiffeId.fromPath', () => {
  const td = TrustDomain.parse('example.org');

  it('joins trust domain and path', () => {
    expect(SpiffeId.fromPath(td, '/agent/a').toString()).toBe('spiffe://example.org/agent/a');
    expect(SpiffeId.fromPath(td, '').isRoot).toBe(true);
  });

  it.each<[string, PkiErrorCode]>([
    ['agent', 'PKI_ERR_ID_PATH_CHARS'],
    ['/agent/', 'PKI_ERR_ID_TRAILING_SLASH'],
    ['/a/../b', 'PKI_ERR_ID_DOT_SEGMENT'],
    ['//a', 'PKI_ERR_ID_EMPTY_SEGMENT'],
    ['/a?x', 'PKI_ERR_ID_QUERY'],
  ])('refuses path %j with %s', (path, code) => {
    expect(codeOf(() => SpiffeId.fromPath(td, path))).toBe(code);
  });
});

describe('TrustDomain.parse', () => {
  it.each<[string, string]>([
    ['example.org', 'example.org'],
    ['td', 'td'],
    ['a-b_c.d9', 'a-b_c.d9'],
    ['a'.repeat(251) + '.org', TD_255],
    ['spiffe://td/x', 'td'],
    ['spiffe://example.org/agent/support', 'example.org'],
    ['spiffe://example.org', 'example.org'],
  ])('%j → %j', (input, name) => {
    const td = TrustDomain.parse(input);
    expect(td.name).toBe(name);
    expect(td.toString()).toBe(name);
    expect(td.idString()).toBe(`spiffe://${name}`);
  });

  it.each<[string, PkiErrorCode]>([
    ['', 'PKI_ERR_ID_TRUST_DOMAIN_EMPTY'],
    ['Example.org', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['exa mple.org', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['exämple.org', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['example.org/path', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['example.org:8443', 'PKI_ERR_ID_PORT'],
    ['user@example.org', 'PKI_ERR_ID_USERINFO'],
    ['ex%61mple.org', 'PKI_ERR_ID_PERCENT_ENCODED'],
    [TD_256, 'PKI_ERR_ID_TRUST_DOMAIN_TOO_LONG'],
    // A SPIFFE ID given to TrustDomain.parse is held to every SPIFFE ID rule.
    ['spiffe://Example.org/x', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['spiffe://example.org/x/', 'PKI_ERR_ID_TRAILING_SLASH'],
    ['spiffe://example.org/x?y', 'PKI_ERR_ID_QUERY'],
    ['spiffe://', 'PKI_ERR_ID_TRUST_DOMAIN_EMPTY'],
  ])('%j → %s', (input, code) => {
    expect(codeOf(() => TrustDomain.parse(input))).toBe(code);
  });

  it('equals compares names byte for byte', () => {
    expect(TrustDomain.parse('example.org').equals(TrustDomain.parse('spiffe://example.org/x'))).toBe(true);
    expect(TrustDomain.parse('example.org').equals(TrustDomain.parse('example.com'))).toBe(false);
  });

  it('is the trust domain of the ID it came from', () => {
    const id = SpiffeId.parse('spiffe://example.org/x');
    expect(id.trustDomain.equals(TrustDomain.parse('example.org'))).toBe(true);
  });
});
