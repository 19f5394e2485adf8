import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newP256Key } from '../src/ca.js';
import {
  ENROLLMENT_AUDIENCE,
  ENROLLMENT_TOKEN_TYPE,
  EnrollmentTokenVerifier,
  issueEnrollmentToken,
  MemoryUsedTokenStore,
  type UsedTokenStore,
} from '../src/enrollment-token.js';
import { isPkiError, PkiError, type PkiErrorCode } from '../src/errors.js';
import { publicKeyOf } from '../src/internal/crypto.js';
import { issueJwtSvid, validateJwtSvid } from '../src/jwt-svid.js';
import { SpiffeId } from '../src/spiffe-id.js';
import { createTestCA, type TestCA } from '../src/testing/index.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const T = NOW.getTime() / 1000;
const ID = 'spiffe://example.org/connector/crm';
const ISS = 'spiffe://example.org';

let t: TestCA;
let enrollKey: KeyObject;
let enrollKid: string;

beforeAll(async () => {
  t = await createTestCA();
  ({ privateKey: enrollKey, keyId: enrollKid } = t.ca.enrollmentSigner());
});

/** A settable clock shared by a verifier and its store. */
function clock(start = NOW) {
  let ms = start.getTime();
  return {
    now: () => new Date(ms),
    set: (d: Date | number) => {
      ms = typeof d === 'number' ? d * 1000 : d.getTime();
    },
  };
}

function verifierAt(c = clock(), store: UsedTokenStore = new MemoryUsedTokenStore({ now: c.now })) {
  return new EnrollmentTokenVerifier({ trustDomain: t.trustDomain, publicKey: t.ca.enrollmentSigner().publicKey, store, now: c.now });
}

async function codeOf(p: Promise<unknown>): Promise<PkiErrorCode | 'OK'> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    if (!isPkiError(err)) throw err;
    expect(err.message).toMatch(/^(enrollment|jwtsvid|ca|spiffeid): /);
    return err.code;
  }
}

const goodHeader = () => ({ alg: 'ES256', kid: enrollKid, typ: ENROLLMENT_TOKEN_TYPE });
const goodClaims = (): Record<string, unknown> => ({ sub: ID, aud: ENROLLMENT_AUDIENCE, iss: ISS, jti: 'AAAAAAAAAAAAAAAAAAAAAA', iat: T, exp: T + 900 });

/** sign makes a token with any header and claims (undefined members are dropped by JSON). */
function sign(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject | Uint8Array = enrollKey): Promise<string> {
  return new SignJWT(JSON.parse(JSON.stringify(claims)) as Record<string, unknown>)
    .setProtectedHeader(JSON.parse(JSON.stringify(header)) as { alg: string })
    .sign(key);
}

describe('issueEnrollmentToken', () => {
  it('signs ES256 with the enrollment key, typ switchboard-enroll+jwt, and the documented claims', async () => {
    const token = await issueEnrollmentToken(t.ca, ID, { now: NOW });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', kid: enrollKid, typ: 'switchboard-enroll+jwt' });
    const claims = decodeJwt(token);
    expect(Object.keys(claims).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'sub']);
    expect(claims).toMatchObject({ sub: ID, aud: 'switchboard-enrollment', iss: ISS, iat: T, exp: T + 900 });
    expect(claims.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(Buffer.from(claims.jti as string, 'base64url')).toHaveLength(16);
    await expect(jwtVerify(token, t.ca.enrollmentSigner().publicKey, { currentDate: NOW })).resolves.toBeDefined();
  });

  it('is not signed by the JWT-SVID key', async () => {
    const token = await issueEnrollmentToken(t.ca, ID, { now: NOW });
    expect(t.ca.enrollmentSigner().keyId).not.toBe(t.ca.jwtSigner().keyId);
    await expect(jwtVerify(token, publicKeyOf(t.ca.jwtSigner().privateKey), { currentDate: NOW })).rejects.toThrow(/signature/);
  });

  it('gives every token a fresh jti', async () => {
    const jtis = new Set<unknown>();
    for (let i = 0; i < 20; i++) jtis.add(decodeJwt(await issueEnrollmentToken(t.ca, ID, { now: NOW })).jti);
    expect(jtis.size).toBe(20);
  });

  it.each([
    [1, 'OK'],
    [900, 'OK'],
    [3600, 'OK'],
    [3601, 'PKI_ERR_TOKEN_INVALID'],
    [86400, 'PKI_ERR_TOKEN_INVALID'],
    [0, 'PKI_ERR_TOKEN_INVALID'],
    [-60, 'PKI_ERR_TOKEN_INVALID'],
    [0.5, 'PKI_ERR_TOKEN_INVALID'],
    [Number.POSITIVE_INFINITY, 'PKI_ERR_TOKEN_INVALID'],
  ] as const)('ttlSeconds %s → %s', async (ttlSeconds, code) => {
    const p = issueEnrollmentToken(t.ca, ID, { ttlSeconds, now: NOW });
    expect(await codeOf(p)).toBe(code);
    if (code === 'OK') expect(decodeJwt(await p).exp).toBe(T + ttlSeconds);
  });

  it('explains the TTL limit', async () => {
    await expect(issueEnrollmentToken(t.ca, ID, { ttlSeconds: 7200 })).rejects.toThrow(/^enrollment: TTL 7200s is over the maximum of 3600s/);
  });

  it.each([
    ['outside the trust domain', 'spiffe://other.org/connector/crm', 'PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN'],
    ['the trust domain root', 'spiffe://example.org', 'PKI_ERR_SVID_ROOT_PATH'],
    ['invalid', 'spiffe://example.org/a//b', 'PKI_ERR_ID_EMPTY_SEGMENT'],
    ['a SpiffeId object', SpiffeId.parse(ID), 'OK'],
  ] as const)('id %s → %s', async (_name, id, code) => {
    expect(await codeOf(issueEnrollmentToken(t.ca, id, { now: NOW }))).toBe(code);
  });
});

describe('EnrollmentTokenVerifier', () => {
  it('redeems a token once and returns its ID', async () => {
    const v = verifierAt();
    const token = await issueEnrollmentToken(t.ca, ID, { now: NOW });
    const id = await v.redeem(token);
    expect(id.toString()).toBe(ID);
    expect(await codeOf(v.redeem(token))).toBe('PKI_ERR_TOKEN_USED');
    expect(await codeOf(v.redeem(token, SpiffeId.parse(ID)))).toBe('PKI_ERR_TOKEN_USED');
  });

  it('a fresh token for the same ID still redeems after the first', async () => {
    const v = verifierAt();
    await v.redeem(await issueEnrollmentToken(t.ca, ID, { now: NOW }));
    expect(await codeOf(v.redeem(await issueEnrollmentToken(t.ca, ID, { now: NOW })))).toBe('OK');
  });

  it('refuses a token bound to another ID, without consuming it', async () => {
    const v = verifierAt();
    const token = await issueEnrollmentToken(t.ca, ID, { now: NOW });
    expect(await codeOf(v.redeem(token, SpiffeId.parse('spiffe://example.org/connector/other')))).toBe('PKI_ERR_TOKEN_ID_MISMATCH');
    expect((await v.redeem(token, SpiffeId.parse(ID))).toString()).toBe(ID);
  });

  it.each([
    ['just issued', 0, 'OK'],
    ['one second before exp', 899, 'OK'],
    ['at exp, within the 30 s skew', 900, 'OK'],
    ['29 s after exp', 929, 'OK'],
    ['30 s after exp', 930, 'PKI_ERR_TOKEN_EXPIRED'],
    ['an hour after exp', 900 + 3600, 'PKI_ERR_TOKEN_EXPIRED'],
    ['31 s before iat (clock behind)', -31, 'PKI_ERR_TOKEN_INVALID'],
    ['29 s before iat (clock behind, within skew)', -29, 'OK'],
  ] as const)('redeemed %s → %s', async (_name, offset, code) => {
    const c = clock();
    const token = await issueEnrollmentToken(t.ca, ID, { now: NOW });
    c.set(T + offset);
    expect(await codeOf(verifierAt(c).redeem(token))).toBe(code);
  });

  it('cannot be replayed inside the clock-skew window after exp', async () => {
    const c = clock();
    const v = verifierAt(c);
    const token = await issueEnrollmentToken(t.ca, ID, { ttlSeconds: 60, now: NOW });
    c.set(T + 65); // past exp, accepted thanks to skew
    expect(await codeOf(v.redeem(token))).toBe('OK');
    c.set(T + 89); // still within skew: the store must still remember it
    expect(await codeOf(v.redeem(token))).toBe('PKI_ERR_TOKEN_USED');
    c.set(T + 90);
    expect(await codeOf(v.redeem(token))).toBe('PKI_ERR_TOKEN_EXPIRED');
  });

  it('passes jti and exp + skew to the store', async () => {
    const calls: [string, Date][] = [];
    const store: UsedTokenStore = { markUsed: (jti, at) => (calls.push([jti, at]), true) };
    const token = await issueEnrollmentToken(t.ca, ID, { ttlSeconds: 600, now: NOW });
    await verifierAt(clock(), store).redeem(token);
    expect(calls).toEqual([[decodeJwt(token).jti, new Date((T + 630) * 1000)]]);
  });

  it('uses the current time when no clock is given', async () => {
    const v = new EnrollmentTokenVerifier({ trustDomain: 'example.org', publicKey: t.ca.enrollmentSigner().publicKey, store: new MemoryUsedTokenStore() });
    expect(await codeOf(v.redeem(await issueEnrollmentToken(t.ca, ID)))).toBe('OK');
    expect(await codeOf(v.redeem(await issueEnrollmentToken(t.ca, ID, { now: new Date(Date.now() - 7200_000) })))).toBe('PKI_ERR_TOKEN_EXPIRED');
  });

  it('the crafted-token helper makes redeemable tokens', async () => {
    expect(await codeOf(verifierAt().redeem(await sign(goodHeader(), goodClaims())))).toBe('OK');
  });

  const none = (h: Record<string, unknown>) => `${Buffer.from(JSON.stringify(h)).toString('base64url')}.${Buffer.from(JSON.stringify(goodClaims())).toString('base64url')}.`;

  it.each([
    ['empty', async () => ''],
    ['not a JWT', async () => 'abc'],
    ['three garbage segments', async () => 'a.b.c'],
    ['too long', async () => sign(goodHeader(), { ...goodClaims(), pad: 'x'.repeat(9000) })],
    ['alg none', async () => none({ alg: 'none', typ: ENROLLMENT_TOKEN_TYPE })],
    ['alg HS256 keyed with the public key', async () =>
      sign({ alg: 'HS256', typ: ENROLLMENT_TOKEN_TYPE }, goodClaims(), t.ca.enrollmentSigner().publicKey.export({ format: 'der', type: 'spki' }))],
    ['alg ES384', async () => sign({ ...goodHeader(), alg: 'ES384' }, goodClaims(), generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey)],
    ['alg RS256', async () => sign({ ...goodHeader(), alg: 'RS256' }, goodClaims(), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey)],
    ['typ missing', async () => sign({ ...goodHeader(), typ: undefined }, goodClaims())],
    ['typ JWT', async () => sign({ ...goodHeader(), typ: 'JWT' }, goodClaims())],
    ['header jku', async () => sign({ ...goodHeader(), jku: 'https://evil.example/jwks' }, goodClaims())],
    ['header jwk', async () => sign({ ...goodHeader(), jwk: publicKeyOf(enrollKey).export({ format: 'jwk' }) }, goodClaims())],
    ['signed by another key', async () => sign(goodHeader(), goodClaims(), newP256Key())],
    ['signed by the JWT-SVID key', async () => sign(goodHeader(), goodClaims(), t.ca.jwtSigner().privateKey)],
    ['payload changed after signing', async () => {
      const [h, , s] = (await sign(goodHeader(), goodClaims())).split('.');
      return `${h}.${Buffer.from(JSON.stringify({ ...goodClaims(), sub: 'spiffe://example.org/agent/admin' })).toString('base64url')}.${s}`;
    }],
    ['aud missing', async () => sign(goodHeader(), { ...goodClaims(), aud: undefined })],
    ['aud another', async () => sign(goodHeader(), { ...goodClaims(), aud: 'crm' })],
    ['iss missing', async () => sign(goodHeader(), { ...goodClaims(), iss: undefined })],
    ['iss another trust domain', async () => sign(goodHeader(), { ...goodClaims(), iss: 'spiffe://other.org' })],
    ['iss a workload ID', async () => sign(goodHeader(), { ...goodClaims(), iss: ID })],
    ['sub missing', async () => sign(goodHeader(), { ...goodClaims(), sub: undefined })],
    ['sub not a SPIFFE ID', async () => sign(goodHeader(), { ...goodClaims(), sub: 'connector/crm' })],
    ['sub in another trust domain', async () => sign(goodHeader(), { ...goodClaims(), sub: 'spiffe://other.org/connector/crm' })],
    ['sub the trust domain root', async () => sign(goodHeader(), { ...goodClaims(), sub: ISS })],
    ['jti missing', async () => sign(goodHeader(), { ...goodClaims(), jti: undefined })],
    ['jti empty', async () => sign(goodHeader(), { ...goodClaims(), jti: '' })],
    ['jti a number', async () => sign(goodHeader(), { ...goodClaims(), jti: 7 })],
    ['jti too long', async () => sign(goodHeader(), { ...goodClaims(), jti: 'j'.repeat(129) })],
    ['exp missing', async () => sign(goodHeader(), { ...goodClaims(), exp: undefined })],
    ['iat missing', async () => sign(goodHeader(), { ...goodClaims(), iat: undefined })],
    ['iat in the future', async () => sign(goodHeader(), { ...goodClaims(), iat: T + 120 })],
    ['nbf in the future', async () => sign(goodHeader(), { ...goodClaims(), nbf: T + 120 })],
  ])('%s → PKI_ERR_TOKEN_INVALID', async (_name, make) => {
    expect(await codeOf(verifierAt().redeem(await make()))).toBe('PKI_ERR_TOKEN_INVALID');
  });

  it('a token signed by the CA key but older than the maximum TTL is expired, whatever its exp', async () => {
    const token = await sign(goodHeader(), { ...goodClaims(), iat: T - 3700, exp: T + 86400 });
    expect(await codeOf(verifierAt().redeem(token))).toBe('PKI_ERR_TOKEN_EXPIRED');
  });

  it('a forged expired token is invalid, not expired (signature first)', async () => {
    const token = await sign(goodHeader(), { ...goodClaims(), iat: T - 7200, exp: T - 3600 }, newP256Key());
    expect(await codeOf(verifierAt().redeem(token))).toBe('PKI_ERR_TOKEN_INVALID');
  });

  describe('JWT-SVIDs and enrollment tokens are never interchangeable', () => {
    it('a JWT-SVID does not redeem as an enrollment token', async () => {
      const svid = await issueJwtSvid(t.ca, { subject: ID, audience: ENROLLMENT_AUDIENCE, now: NOW });
      expect(await codeOf(verifierAt().redeem(svid))).toBe('PKI_ERR_TOKEN_INVALID');
      // Even JWT-SVID claims signed by the enrollment key fail: typ JWT, no iss, no jti.
      const lookalike = await sign({ alg: 'ES256', kid: enrollKid, typ: 'JWT' }, decodeJwt(svid));
      expect(await codeOf(verifierAt().redeem(lookalike))).toBe('PKI_ERR_TOKEN_INVALID');
    });

    it('an enrollment token does not validate as a JWT-SVID', async () => {
      const token = await issueEnrollmentToken(t.ca, ID, { now: NOW });
      const opts = { audience: ENROLLMENT_AUDIENCE, now: NOW };
      expect(await codeOf(validateJwtSvid(token, t.bundles, opts))).toBe('PKI_ERR_JWT_TYP_INVALID');
      // With typ rewritten to JWT (re-signed by the enrollment key), its kid is not a JWT authority…
      const retyped = await sign({ ...goodHeader(), typ: 'JWT' }, decodeJwt(token));
      expect(await codeOf(validateJwtSvid(retyped, t.bundles, opts))).toBe('PKI_ERR_JWT_KEY_NOT_FOUND');
      // …and claiming the JWT-SVID kid does not make the enrollment key's signature verify.
      const rekeyed = await sign({ ...goodHeader(), typ: 'JWT', kid: t.ca.jwtSigner().keyId }, decodeJwt(token));
      expect(await codeOf(validateJwtSvid(rekeyed, t.bundles, opts))).toBe('PKI_ERR_JWT_SIGNATURE_INVALID');
    });
  });

  describe('constructor', () => {
    it.each([
      ['a private key', () => enrollKey],
      ['an RSA key', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey],
      ['a P-384 key', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey],
      ['no key', () => undefined],
    ])('publicKey %s is a TypeError', (_name, k) => {
      expect(() => new EnrollmentTokenVerifier({ trustDomain: t.trustDomain, publicKey: k() as never, store: new MemoryUsedTokenStore() })).toThrow(TypeError);
    });

    it('a store is required', () => {
      expect(() => new EnrollmentTokenVerifier({ trustDomain: t.trustDomain, publicKey: publicKeyOf(enrollKey), store: undefined as never })).toThrow(TypeError);
    });

    it('an invalid trust domain is a PkiError', () => {
      expect(() => new EnrollmentTokenVerifier({ trustDomain: 'Example.org', publicKey: publicKeyOf(enrollKey), store: new MemoryUsedTokenStore() })).toThrow(PkiError);
    });

    it('only trusts its own trust domain', async () => {
      const other = await createTestCA({ trustDomain: 'other.org' });
      const token = await issueEnrollmentToken(other.ca, 'spiffe://other.org/connector/crm', { now: NOW });
      // Right key, wrong trust domain configured.
      const v = new EnrollmentTokenVerifier({ trustDomain: t.trustDomain, publicKey: other.ca.enrollmentSigner().publicKey, store: new MemoryUsedTokenStore(), now: () => NOW });
      expect(await codeOf(v.redeem(token))).toBe('PKI_ERR_TOKEN_INVALID');
    });
  });
});

describe('MemoryUsedTokenStore', () => {
  let c: ReturnType<typeof clock>;
  let store: MemoryUsedTokenStore;
  beforeEach(() => {
    c = clock();
    store = new MemoryUsedTokenStore({ now: c.now });
  });

  it('returns true the first time and false after', () => {
    expect(store.markUsed('a', new Date((T + 60) * 1000))).toBe(true);
    expect(store.markUsed('a', new Date((T + 60) * 1000))).toBe(false);
    expect(store.markUsed('b', new Date((T + 60) * 1000))).toBe(true);
    expect(store.size).toBe(2);
  });

  it.each([
    [59, 1, false],
    [60, 0, true],
    [61, 0, true],
  ] as const)('at +%ss it holds %s entries and accepting the jti again is %s', (later, size, again) => {
    store.markUsed('a', new Date((T + 60) * 1000));
    c.set(T + later);
    expect(store.size).toBe(size);
    expect(store.markUsed('a', new Date((T + 120) * 1000))).toBe(again);
  });

  it('stays bounded: expired entries are dropped, live ones kept', () => {
    for (let i = 0; i < 1000; i++) store.markUsed(`jti-${i}`, new Date((T + 1 + (i % 100)) * 1000));
    expect(store.size).toBe(1000);
    c.set(T + 50);
    expect(store.size).toBe(500);
    expect(store.markUsed('jti-99', new Date((T + 200) * 1000))).toBe(false);
    expect(store.markUsed('jti-0', new Date((T + 200) * 1000))).toBe(true);
    c.set(T + 101);
    expect(store.size).toBe(1); // only the re-marked jti-0
    c.set(T + 201);
    expect(store.size).toBe(0);
  });

  it('works with the default clock', () => {
    const s = new MemoryUsedTokenStore();
    expect(s.markUsed('x', new Date(Date.now() + 60_000))).toBe(true);
    expect(s.markUsed('x', new Date(Date.now() + 60_000))).toBe(false);
    expect(s.markUsed('y', new Date(Date.now() - 1))).toBe(true);
    expect(s.size).toBe(1);
  });
});

describe('enrollmentTokenSubject', () => {
  it('reads the SPIFFE ID a token names, without verifying it; refuses what is not a token', async () => {
    const { CertificateAuthority: CA, issueEnrollmentToken: issue, enrollmentTokenSubject: subject } = await import('../src/index.js');
    const ca = await CA.create({ trustDomain: 'example.org' });
    expect(subject(await issue(ca, 'spiffe://example.org/connector/crm')).toString()).toBe('spiffe://example.org/connector/crm');
    expect(() => subject('not-a-jwt')).toThrow(expect.objectContaining({ code: 'PKI_ERR_TOKEN_INVALID', message: expect.stringMatching(/not an enrollment token/) }));
    const noId = `${Buffer.from('{"alg":"ES256"}').toString('base64url')}.${Buffer.from('{"sub":"crm"}').toString('base64url')}.x`;
    expect(() => subject(noId)).toThrow(expect.objectContaining({ code: 'PKI_ERR_TOKEN_INVALID', message: expect.stringMatching(/sub is not a SPIFFE ID/) }));
  });
});
