import { generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { jwtKeyId, newP256Key } from '../src/ca.js';
import { isPkiError, type PkiErrorCode } from '../src/errors.js';
import { publicKeyOf } from '../src/internal/crypto.js';
import {
  DEFAULT_JWT_SVID_TTL_SECONDS,
  issueJwtSvid,
  JWT_SVID_ALGORITHMS,
  validateJwtSvid,
  type JwtSvidValidateOptions,
} from '../src/jwt-svid.js';
import { SpiffeId } from '../src/spiffe-id.js';
import { createTestCA, type TestCA } from '../src/testing/index.js';
import { BundleSet, TrustBundle } from '../src/trust-bundle.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const T = NOW.getTime() / 1000;
const SUB = 'spiffe://example.org/agent/support';
const AUD = 'crm';

let t: TestCA;
let kid: string;
let key: KeyObject;

beforeAll(async () => {
  t = await createTestCA();
  ({ keyId: kid, privateKey: key } = t.ca.jwtSigner());
});

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/**
 * craft builds an ES256 token with any header and payload, including ones jose refuses to sign
 * (unknown `crit`, missing `alg`). The "well-formed crafted token validates" case below proves
 * the helper itself makes valid signatures.
 */
// JSON.stringify drops undefined members: `{ ...goodClaims(), sub: undefined }` has no sub.
function craft(header: Record<string, unknown>, payload: unknown, signingKey: KeyObject = key): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = nodeSign('sha256', Buffer.from(input), { key: signingKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

const goodHeader = (): Record<string, unknown> => ({ alg: 'ES256', kid, typ: 'JWT' });
const goodClaims = (): Record<string, unknown> => ({ sub: SUB, aud: AUD, iat: T, exp: T + 300 });

async function codeOf(p: Promise<unknown>): Promise<PkiErrorCode | 'OK'> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    if (!isPkiError(err)) throw err;
    expect(err.message).toMatch(/^(jwtsvid|ca|spiffeid): /);
    return err.code;
  }
}

const validate = (token: string, o: Partial<JwtSvidValidateOptions> = {}, bundles = t.bundles) =>
  validateJwtSvid(token, bundles, { audience: AUD, now: NOW, ...o });

describe('issueJwtSvid', () => {
  it('signs ES256 with exactly { alg, kid, typ } and claims sub, aud, exp, iat', async () => {
    const token = await issueJwtSvid(t.ca, { subject: SUB, audience: AUD, now: NOW });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', kid: t.ca.jwtSigner().keyId, typ: 'JWT' });
    expect(decodeJwt(token)).toEqual({ sub: SUB, aud: AUD, iat: T, exp: T + DEFAULT_JWT_SVID_TTL_SECONDS });
    // The CA's bundle key verifies it (independently of validateJwtSvid).
    const pub = t.bundle.jwtAuthorities.get(t.ca.jwtSigner().keyId)?.publicKey as KeyObject;
    await expect(jwtVerify(token, pub, { algorithms: ['ES256'], currentDate: NOW })).resolves.toBeDefined();
  });

  it.each([
    ['one audience stays a string', 'crm', 'crm'],
    ['several audiences stay a list', ['crm', 'tickets'], ['crm', 'tickets']],
  ])('%s', async (_name, audience, expected) => {
    const token = await issueJwtSvid(t.ca, { subject: SpiffeId.parse(SUB), audience, now: NOW });
    expect(decodeJwt(token).aud).toEqual(expected);
  });

  it.each([
    [1, 'OK'],
    [3600, 'OK'],
    [3601, 'PKI_ERR_JWT_TTL_TOO_LONG'],
    [0, 'PKI_ERR_JWT_TTL_TOO_LONG'],
    [-5, 'PKI_ERR_JWT_TTL_TOO_LONG'],
    [1.5, 'PKI_ERR_JWT_TTL_TOO_LONG'],
    [Number.NaN, 'PKI_ERR_JWT_TTL_TOO_LONG'],
  ] as const)('ttlSeconds %s → %s', async (ttlSeconds, code) => {
    const p = issueJwtSvid(t.ca, { subject: SUB, audience: AUD, ttlSeconds, now: NOW });
    expect(await codeOf(p)).toBe(code);
    if (code === 'OK') expect(decodeJwt(await p).exp).toBe(T + ttlSeconds);
  });

  it.each([
    ['outside the trust domain', 'spiffe://other.org/agent/a', 'PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN'],
    ['the trust domain root', 'spiffe://example.org', 'PKI_ERR_SVID_ROOT_PATH'],
    ['not a SPIFFE ID', 'https://example.org/agent/a', 'PKI_ERR_ID_SCHEME'],
    ['a workload in the trust domain', 'spiffe://example.org/connector/crm', 'OK'],
  ] as const)('subject %s → %s', async (_name, subject, code) => {
    expect(await codeOf(issueJwtSvid(t.ca, { subject, audience: AUD, now: NOW }))).toBe(code);
  });

  it.each([[''], [[]], [['crm', '']], [[42]]])('audience %j is a caller mistake (TypeError)', async (audience) => {
    await expect(issueJwtSvid(t.ca, { subject: SUB, audience: audience as never, now: NOW })).rejects.toThrow(TypeError);
  });

  it('round-trips through validateJwtSvid with the exact result', async () => {
    const token = await issueJwtSvid(t.ca, { subject: SUB, audience: ['tickets', AUD], ttlSeconds: 60, now: NOW });
    const v = await validate(token);
    expect(v.id.toString()).toBe(SUB);
    expect(v.audience).toEqual(['tickets', AUD]);
    expect(v.expiresAt).toEqual(new Date((T + 60) * 1000));
    expect(v.claims).toEqual({ sub: SUB, aud: ['tickets', AUD], iat: T, exp: T + 60 });
  });
});

describe('validateJwtSvid', () => {
  it('accepts a well-formed crafted token (the craft helper signs correctly)', async () => {
    expect(await codeOf(validate(craft(goodHeader(), goodClaims())))).toBe('OK');
  });

  describe('structure', () => {
    it.each([
      ['empty string', () => ''],
      ['one segment', () => 'abc'],
      ['two segments', () => 'abc.def'],
      ['five segments (JWE shape)', () => 'a.b.c.d.e'],
      ['empty header segment', () => `.${b64(goodClaims())}.sig`],
      ['header is not JSON', () => `${b64('not json')}.${b64(goodClaims())}.sig`],
      ['header is a JSON array', () => `${b64([1])}.${b64(goodClaims())}.sig`],
      ['payload is not JSON', () => craft(goodHeader(), 'not json')],
      ['payload is a JSON array', () => craft(goodHeader(), [SUB])],
      ['payload is null', () => craft(goodHeader(), null)],
      ['empty payload segment', () => `${b64(goodHeader())}..sig`],
      ['longer than 16 KiB', () => craft(goodHeader(), { ...goodClaims(), pad: 'x'.repeat(16 * 1024) })],
      ['signature is not base64url', () => `${craft(goodHeader(), goodClaims())}***`],
      ['exp is a string', () => craft(goodHeader(), { ...goodClaims(), exp: String(T + 300) })],
      ['nbf is a string', () => craft(goodHeader(), { ...goodClaims(), nbf: 'soon' })],
      ['iat is null', () => craft(goodHeader(), { ...goodClaims(), iat: null })],
      ['aud is a number', () => craft(goodHeader(), { ...goodClaims(), aud: 42 })],
      ['aud list holds a number', () => craft(goodHeader(), { ...goodClaims(), aud: [AUD, 42] })],
    ])('%s → PKI_ERR_JWT_MALFORMED', async (_name, make) => {
      expect(await codeOf(validate(make()))).toBe('PKI_ERR_JWT_MALFORMED');
    });

    it('a non-string token is malformed', async () => {
      expect(await codeOf(validate(42 as never))).toBe('PKI_ERR_JWT_MALFORMED');
    });
  });

  describe('alg', () => {
    it.each([
      ['none, unsigned', () => `${b64({ alg: 'none', kid, typ: 'JWT' })}.${b64(goodClaims())}.`],
      ['none, with a signature', () => craft({ alg: 'none', kid }, goodClaims())],
      ['HS256 keyed with the public key (alg confusion)', async () =>
        new SignJWT(goodClaims()).setProtectedHeader({ alg: 'HS256', kid }).sign(publicKeyOf(key).export({ format: 'der', type: 'spki' }))],
      ['HS384', async () => new SignJWT(goodClaims()).setProtectedHeader({ alg: 'HS384', kid }).sign(new Uint8Array(48))],
      ['HS512', async () => new SignJWT(goodClaims()).setProtectedHeader({ alg: 'HS512', kid }).sign(new Uint8Array(64))],
      ['EdDSA (not in the JWT-SVID list)', () => craft({ alg: 'EdDSA', kid }, goodClaims())],
      ['lowercase es256', () => craft({ alg: 'es256', kid }, goodClaims())],
      ['missing', () => craft({ kid, typ: 'JWT' }, goodClaims())],
      ['not a string', () => craft({ alg: ['ES256'], kid }, goodClaims())],
      // alg is checked before any other header rule: this one also has a bad header and no kid.
      ['none, checked before the header and kid rules', () => craft({ alg: 'none', jku: 'https://evil.example/jwks' }, goodClaims())],
    ])('%s → PKI_ERR_JWT_ALG_NOT_ALLOWED', async (_name, make) => {
      expect(await codeOf(validate(await make()))).toBe('PKI_ERR_JWT_ALG_NOT_ALLOWED');
    });

    // Every allowed algorithm validates with a matching key from the bundle.
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ecKeys: Record<string, KeyObject> = {
      ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      ES384: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey,
      ES512: generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey,
    };
    const keyFor = (alg: string): KeyObject => ecKeys[alg] ?? rsa.privateKey;

    it.each(JWT_SVID_ALGORITHMS.map((a) => [a]))('%s with a matching key → OK', async (alg) => {
      const bundle = new TrustBundle({ trustDomain: t.trustDomain, jwtAuthorities: [{ keyId: `k-${alg}`, publicKey: publicKeyOf(keyFor(alg)) }] });
      const token = await new SignJWT(goodClaims()).setProtectedHeader({ alg, kid: `k-${alg}` }).sign(keyFor(alg));
      expect(await codeOf(validate(token, {}, new BundleSet([bundle])))).toBe('OK');
    });

    it.each([
      ['ES384 on a P-256 key', 'ES384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey],
      ['RS256 on an EC key', 'RS256', () => rsa.privateKey],
      ['PS256 on an EC key', 'PS256', () => rsa.privateKey],
    ])('%s (key does not fit alg) → PKI_ERR_JWT_SIGNATURE_INVALID', async (_name, alg, signer) => {
      // Header names the CA's P-256 kid; the signature is made with a key of the header's alg.
      const token = await new SignJWT(goodClaims()).setProtectedHeader({ alg, kid }).sign(signer());
      expect(await codeOf(validate(token))).toBe('PKI_ERR_JWT_SIGNATURE_INVALID');
    });
  });

  describe('header parameters', () => {
    it.each([
      ['jku', { jku: 'https://evil.example/jwks.json' }],
      ['x5u', { x5u: 'https://evil.example/cert.pem' }],
      ['jwk', { jwk: { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' } }],
      ['x5c', { x5c: ['MIIB'] }],
      ['crit', { crit: ['exp-ext'], 'exp-ext': true }],
      ['b64', { b64: true }],
      ['cty', { cty: 'JWT' }],
      ['zip', { zip: 'DEF' }],
    ])('%s → PKI_ERR_JWT_HEADER_NOT_ALLOWED', async (_name, extra) => {
      expect(await codeOf(validate(craft({ ...goodHeader(), ...extra }, goodClaims())))).toBe('PKI_ERR_JWT_HEADER_NOT_ALLOWED');
    });

    it.each([
      ['typ JWT', { typ: 'JWT' }, 'OK'],
      ['typ JOSE', { typ: 'JOSE' }, 'OK'],
      ['no typ', { typ: undefined }, 'OK'],
      ['typ jwt (lowercase)', { typ: 'jwt' }, 'PKI_ERR_JWT_TYP_INVALID'],
      ['typ at+jwt', { typ: 'at+jwt' }, 'PKI_ERR_JWT_TYP_INVALID'],
      ['typ of an enrollment token', { typ: 'switchboard-enroll+jwt' }, 'PKI_ERR_JWT_TYP_INVALID'],
      ['typ a number', { typ: 1 }, 'PKI_ERR_JWT_TYP_INVALID'],
    ] as const)('%s → %s', async (_name, extra, code) => {
      expect(await codeOf(validate(craft({ ...goodHeader(), ...extra }, goodClaims())))).toBe(code);
    });

    it.each([
      ['absent', undefined],
      ['empty', ''],
      ['a number', 7],
    ])('kid %s → PKI_ERR_JWT_KID_MISSING', async (_name, k) => {
      expect(await codeOf(validate(craft({ alg: 'ES256', typ: 'JWT', kid: k }, goodClaims())))).toBe('PKI_ERR_JWT_KID_MISSING');
    });
  });

  describe('sub and key lookup', () => {
    it.each([
      ['missing', undefined, 'PKI_ERR_JWT_SUB_INVALID'],
      ['not a string', 42, 'PKI_ERR_JWT_SUB_INVALID'],
      ['not a SPIFFE ID', 'agent/support', 'PKI_ERR_JWT_SUB_INVALID'],
      ['uppercase trust domain', 'spiffe://Example.org/agent/support', 'PKI_ERR_JWT_SUB_INVALID'],
      ['trailing slash', 'spiffe://example.org/agent/', 'PKI_ERR_JWT_SUB_INVALID'],
      ['trust domain root', 'spiffe://example.org', 'PKI_ERR_JWT_SUB_INVALID'],
      ['another trust domain (no bundle)', 'spiffe://other.org/agent/support', 'PKI_ERR_BUNDLE_NOT_FOUND'],
      ['a workload of ours', 'spiffe://example.org/connector/crm', 'OK'],
    ] as const)('sub %s → %s', async (_name, sub, code) => {
      expect(await codeOf(validate(craft(goodHeader(), { ...goodClaims(), sub })))).toBe(code);
    });

    it('an unknown kid → PKI_ERR_JWT_KEY_NOT_FOUND', async () => {
      expect(await codeOf(validate(craft({ ...goodHeader(), kid: 'no-such-key' }, goodClaims())))).toBe('PKI_ERR_JWT_KEY_NOT_FOUND');
    });

    it('the key of another CA of the same trust domain → PKI_ERR_JWT_KEY_NOT_FOUND', async () => {
      const other = await createTestCA();
      const token = await issueJwtSvid(other.ca, { subject: SUB, audience: AUD, now: NOW });
      expect(await codeOf(validate(token))).toBe('PKI_ERR_JWT_KEY_NOT_FOUND');
      expect(await codeOf(validate(token, {}, other.bundles))).toBe('OK');
    });

    it('X.509 authorities never verify JWT-SVIDs, in memory or after a JWKS round-trip', async () => {
      const rootKey = (t.ca as unknown as { rootKey: KeyObject }).rootKey;
      const rootKid = jwtKeyId(t.ca.rootCertificate.publicKey);
      const token = craft({ ...goodHeader(), kid: rootKid }, goodClaims(), rootKey);
      expect(await codeOf(validate(token))).toBe('PKI_ERR_JWT_KEY_NOT_FOUND');
      const parsed = TrustBundle.parseJwks(t.trustDomain, t.bundle.toJwks());
      expect(parsed.x509Authorities).toHaveLength(1);
      expect(await codeOf(validate(token, {}, new BundleSet([parsed])))).toBe('PKI_ERR_JWT_KEY_NOT_FOUND');
    });
  });

  describe('signature', () => {
    it.each([
      ['signed by another key under our kid', () => craft(goodHeader(), goodClaims(), newP256Key())],
      ['payload changed after signing', () => {
        const [h, , s] = craft(goodHeader(), goodClaims()).split('.');
        return `${h}.${b64({ ...goodClaims(), aud: 'something-else' })}.${s}`;
      }],
      ['header changed after signing', () => {
        const [, p, s] = craft(goodHeader(), goodClaims()).split('.');
        return `${b64({ alg: 'ES256', kid, typ: 'JOSE' })}.${p}.${s}`;
      }],
      ['signature truncated', () => craft(goodHeader(), goodClaims()).slice(0, -4)],
      ['signature empty', () => craft(goodHeader(), goodClaims()).replace(/\.[^.]+$/, '.')],
    ])('%s → PKI_ERR_JWT_SIGNATURE_INVALID', async (_name, make) => {
      expect(await codeOf(validate(make()))).toBe('PKI_ERR_JWT_SIGNATURE_INVALID');
    });

    it('signature is checked before the claims (an expired forgery is a bad signature)', async () => {
      const token = craft(goodHeader(), { ...goodClaims(), exp: T - 3600 }, newP256Key());
      expect(await codeOf(validate(token))).toBe('PKI_ERR_JWT_SIGNATURE_INVALID');
    });
  });

  describe('time', () => {
    it.each([
      ['exp missing', { exp: undefined }, {}, 'PKI_ERR_JWT_EXP_MISSING'],
      ['exp long past', { exp: T - 3600 }, {}, 'PKI_ERR_JWT_EXPIRED'],
      ['exp 31 s past (beyond the 30 s leeway)', { exp: T - 31 }, {}, 'PKI_ERR_JWT_EXPIRED'],
      ['exp exactly 30 s past', { exp: T - 30 }, {}, 'PKI_ERR_JWT_EXPIRED'],
      ['exp 29 s past (within leeway)', { exp: T - 29 }, {}, 'OK'],
      ['exp now, leeway 0', { exp: T }, { leewaySeconds: 0 }, 'PKI_ERR_JWT_EXPIRED'],
      ['exp in 1 s, leeway 0', { exp: T + 1 }, { leewaySeconds: 0 }, 'OK'],
      ['exp 50 s past, leeway 60', { exp: T - 50 }, { leewaySeconds: 60 }, 'OK'],
      ['nbf 31 s ahead', { nbf: T + 31 }, {}, 'PKI_ERR_JWT_NOT_YET_VALID'],
      ['nbf 30 s ahead (within leeway)', { nbf: T + 30 }, {}, 'OK'],
      ['nbf 1 s ahead, leeway 0', { nbf: T + 1 }, { leewaySeconds: 0 }, 'PKI_ERR_JWT_NOT_YET_VALID'],
      ['nbf past', { nbf: T - 10 }, {}, 'OK'],
      ['iat 31 s ahead', { iat: T + 31 }, {}, 'PKI_ERR_JWT_NOT_YET_VALID'],
      ['iat 30 s ahead (within leeway)', { iat: T + 30 }, {}, 'OK'],
      ['iat missing (optional)', { iat: undefined }, {}, 'OK'],
    ] as const)('%s → %s', async (_name, claims, opts, code) => {
      // JSON.stringify drops undefined members, so `{ exp: undefined }` removes the claim.
      expect(await codeOf(validate(craft(goodHeader(), { ...goodClaims(), ...claims }), opts))).toBe(code);
    });

    it('uses the current time when now is not given', async () => {
      const token = await issueJwtSvid(t.ca, { subject: SUB, audience: AUD });
      expect(await codeOf(validateJwtSvid(token, t.bundles, { audience: AUD }))).toBe('OK');
      const old = await issueJwtSvid(t.ca, { subject: SUB, audience: AUD, now: new Date(Date.now() - 3600_000) });
      expect(await codeOf(validateJwtSvid(old, t.bundles, { audience: AUD }))).toBe('PKI_ERR_JWT_EXPIRED');
    });
  });

  describe('aud', () => {
    it.each([
      ['string equal to ours', AUD, 'OK'],
      ['list containing ours', ['tickets', AUD], 'OK'],
      ['another string', 'tickets', 'PKI_ERR_JWT_AUD_MISMATCH'],
      ['a prefix of ours', 'cr', 'PKI_ERR_JWT_AUD_MISMATCH'],
      ['ours in another case', 'CRM', 'PKI_ERR_JWT_AUD_MISMATCH'],
      ['list without ours', ['tickets', 'billing'], 'PKI_ERR_JWT_AUD_MISMATCH'],
      ['empty list', [], 'PKI_ERR_JWT_AUD_MISMATCH'],
      ['missing', undefined, 'PKI_ERR_JWT_AUD_MISMATCH'],
    ] as const)('aud %s → %s', async (_name, aud, code) => {
      expect(await codeOf(validate(craft(goodHeader(), { ...goodClaims(), aud })))).toBe(code);
    });
  });

  describe('options', () => {
    it.each([
      ['leeway 61', { leewaySeconds: 61 }],
      ['leeway -1', { leewaySeconds: -1 }],
      ['leeway NaN', { leewaySeconds: Number.NaN }],
      ['empty audience', { audience: '' }],
      ['invalid now', { now: new Date('nope') }],
    ])('%s is a TypeError', async (_name, o) => {
      await expect(validate(craft(goodHeader(), goodClaims()), o as Partial<JwtSvidValidateOptions>)).rejects.toThrow(TypeError);
    });

    it('leeway 60 is allowed', async () => {
      expect(await codeOf(validate(craft(goodHeader(), goodClaims()), { leewaySeconds: 60 }))).toBe('OK');
    });
  });

  it('validates against a bundle parsed back from its JWKS form', async () => {
    const parsed = TrustBundle.parseJwks(t.trustDomain, t.bundle.toJwks({ sequenceNumber: 3 }));
    expect(parsed.jwtAuthorities.has(kid)).toBe(true);
    const token = await issueJwtSvid(t.ca, { subject: SUB, audience: AUD, now: NOW });
    const v = await validateJwtSvid(token, new BundleSet([parsed]), { audience: AUD, now: NOW });
    expect(v.id.toString()).toBe(SUB);
    // A JWKS without the jwt-svid entry cannot verify it.
    const doc = JSON.parse(t.bundle.toJwks()) as { keys: { use: string }[] };
    doc.keys = doc.keys.filter((k) => k.use !== 'jwt-svid');
    const x509Only = TrustBundle.parseJwks(t.trustDomain, JSON.stringify(doc));
    expect(await codeOf(validateJwtSvid(token, new BundleSet([x509Only]), { audience: AUD, now: NOW }))).toBe('PKI_ERR_JWT_KEY_NOT_FOUND');
  });
});
