import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { PkiError, type PkiErrorCode } from '../src/errors.js';
import { TrustDomain } from '../src/spiffe-id.js';
import { createTestCA, type TestCA } from '../src/testing/index.js';
import { BundleSet, parseCertificatesPem, TrustBundle } from '../src/trust-bundle.js';
import { validateX509Svid } from '../src/x509-svid.js';

function codeOf(fn: () => unknown): PkiErrorCode | string {
  try {
    fn();
  } catch (err) {
    return err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`;
  }
  return 'no error';
}

type Jwk = Record<string, unknown>;

let ca: TestCA;
let other: TestCA;
let x509Entry: Jwk; // the root as the CA publishes it
let jwtEntry: Jwk; // the JWT-SVID key as the CA publishes it

function der(cert: X509Certificate): string {
  return cert.raw.toString('base64');
}

function jwks(keys: unknown[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ keys, ...extra });
}

beforeAll(async () => {
  [ca, other] = await Promise.all([createTestCA({ trustDomain: 'example.org' }), createTestCA({ trustDomain: 'example.org' })]);
  const doc = JSON.parse(ca.bundle.toJwks()) as { keys: Jwk[] };
  x509Entry = doc.keys.find((k) => k.use === 'x509-svid') as Jwk;
  jwtEntry = doc.keys.find((k) => k.use === 'jwt-svid') as Jwk;
});

describe('TrustBundle PEM', () => {
  it('round-trips the X.509 authorities', () => {
    const pem = ca.bundle.toPem();
    expect(pem).toBe(ca.bundlePem);
    const back = TrustBundle.fromPem('example.org', pem);
    expect(back.trustDomain.name).toBe('example.org');
    expect(back.x509Authorities.map((c) => c.fingerprint256)).toEqual([ca.ca.rootCertificate.fingerprint256]);
    expect(back.toPem()).toBe(pem);
  });

  it('keeps every certificate, in order', () => {
    const pem = ca.bundle.toPem() + other.bundle.toPem();
    const back = TrustBundle.fromPem(TrustDomain.parse('example.org'), pem);
    expect(back.x509Authorities.map((c) => c.fingerprint256)).toEqual([
      ca.ca.rootCertificate.fingerprint256,
      other.ca.rootCertificate.fingerprint256,
    ]);
  });

  it('a PEM bundle validates SVIDs of its CA', async () => {
    const svid = await ca.issue('spiffe://example.org/agent/a');
    const set = new BundleSet([TrustBundle.fromPem('example.org', ca.bundlePem)]);
    expect(validateX509Svid(svid.certificates, set).id.toString()).toBe('spiffe://example.org/agent/a');
  });

  it.each<[string, string]>([
    ['no PEM block', 'hello'],
    ['empty', ''],
    ['junk inside a CERTIFICATE block', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'],
  ])('refuses %s with PKI_ERR_BUNDLE_MALFORMED', (_name, pem) => {
    expect(codeOf(() => TrustBundle.fromPem('example.org', pem))).toBe('PKI_ERR_BUNDLE_MALFORMED');
    expect(codeOf(() => parseCertificatesPem(pem))).toBe('PKI_ERR_BUNDLE_MALFORMED');
  });

  it('refuses an invalid trust domain name', () => {
    expect(codeOf(() => TrustBundle.fromPem('Example.org', ca.bundlePem))).toBe('PKI_ERR_ID_TRUST_DOMAIN_CHARS');
  });
});

describe('TrustBundle JWKS (SPIFFE bundle format)', () => {
  it('round-trips authorities, spiffe_sequence and spiffe_refresh_hint', () => {
    const text = ca.bundle.toJwks({ sequenceNumber: 7, refreshHintSeconds: 300 });
    const doc = JSON.parse(text) as { keys: Jwk[]; spiffe_sequence: number; spiffe_refresh_hint: number };
    expect(doc.spiffe_sequence).toBe(7);
    expect(doc.spiffe_refresh_hint).toBe(300);
    const back = TrustBundle.parseJwks('example.org', text);
    expect(back.sequenceNumber).toBe(7);
    expect(back.refreshHintSeconds).toBe(300);
    expect(back.x509Authorities.map((c) => c.fingerprint256)).toEqual([ca.ca.rootCertificate.fingerprint256]);
    expect([...back.jwtAuthorities.keys()]).toEqual([ca.ca.jwtKeyId]);
    const jwt = back.jwtAuthorities.get(ca.ca.jwtKeyId);
    expect(jwt?.publicKey.export({ format: 'jwk' })).toEqual(ca.bundle.jwtAuthorities.get(ca.ca.jwtKeyId)?.publicKey.export({ format: 'jwk' }));
    // And once more through toJwks: the numbers carry over from the parsed bundle.
    const again = TrustBundle.parseJwks('example.org', Buffer.from(back.toJwks()));
    expect(again.sequenceNumber).toBe(7);
    expect(again.refreshHintSeconds).toBe(300);
  });

  it('writes entries as the X509-SVID and JWT-SVID specs want them', () => {
    // x509-svid: use set, exactly one certificate in x5c, no kid (X509-SVID §6.1)
    expect(x509Entry.use).toBe('x509-svid');
    expect(x509Entry.kty).toBe('EC');
    expect(x509Entry.kid).toBeUndefined();
    expect(x509Entry.x5c).toEqual([der(ca.ca.rootCertificate)]);
    expect(x509Entry.d).toBeUndefined();
    // jwt-svid: use set, kid set, public key only
    expect(jwtEntry.use).toBe('jwt-svid');
    expect(jwtEntry.kid).toBe(ca.ca.jwtKeyId);
    expect(jwtEntry.d).toBeUndefined();
  });

  it('leaves sequence and refresh hint out when unknown', () => {
    const doc = JSON.parse(ca.bundle.toJwks()) as Record<string, unknown>;
    expect('spiffe_sequence' in doc).toBe(false);
    expect('spiffe_refresh_hint' in doc).toBe(false);
    const back = TrustBundle.parseJwks('example.org', ca.bundle.toJwks());
    expect(back.sequenceNumber).toBeUndefined();
    expect(back.refreshHintSeconds).toBeUndefined();
  });

  it('a JWKS bundle validates SVIDs of its CA', async () => {
    const svid = await ca.issue('spiffe://example.org/agent/a');
    const set = new BundleSet([TrustBundle.parseJwks('example.org', ca.bundle.toJwks())]);
    expect(validateX509Svid(svid.certificates, set).id.toString()).toBe('spiffe://example.org/agent/a');
  });

  it.each<[string, () => unknown[], number, number]>([
    ['both usable entries (control)', () => [x509Entry, jwtEntry], 1, 1],
    ['unknown kty', () => [{ ...x509Entry, kty: 'XYZ' }, { ...jwtEntry, kty: 'oct' }], 0, 0],
    ['unknown use', () => [{ ...x509Entry, use: 'enc' }, { ...jwtEntry, use: 'sig' }], 0, 0],
    ['use in another case', () => [{ ...x509Entry, use: 'X509-SVID' }, { ...jwtEntry, use: 'JWT-SVID' }], 0, 0],
    ['absent use', () => [{ ...x509Entry, use: undefined }, { ...jwtEntry, use: undefined }], 0, 0],
    ['x509-svid entry without x5c', () => [{ ...x509Entry, x5c: undefined }], 0, 0],
    ['x509-svid entry with an empty x5c', () => [{ ...x509Entry, x5c: [] }], 0, 0],
    ['jwt-svid entry without kid', () => [{ ...jwtEntry, kid: undefined }], 0, 0],
    ['jwt-svid entry with an empty kid', () => [{ ...jwtEntry, kid: '' }], 0, 0],
    ['usable entries among ignored ones', () => [{ ...x509Entry, use: 'enc' }, x509Entry, { ...jwtEntry, kid: undefined }, jwtEntry], 1, 1],
    ['no keys at all', () => [], 0, 0],
  ])('ignores what it must: %s', (_name, keys, x509Count, jwtCount) => {
    const b = TrustBundle.parseJwks('example.org', jwks(keys()));
    expect(b.x509Authorities).toHaveLength(x509Count);
    expect(b.jwtAuthorities.size).toBe(jwtCount);
  });

  it('uses only the first certificate of x5c', () => {
    const entry = { ...x509Entry, x5c: [der(ca.ca.rootCertificate), der(other.ca.rootCertificate)] };
    const b = TrustBundle.parseJwks('example.org', jwks([entry]));
    expect(b.x509Authorities.map((c) => c.fingerprint256)).toEqual([ca.ca.rootCertificate.fingerprint256]);
  });

  it('a bundle with nothing usable parses with zero authorities, then fails every SVID with PKI_ERR_BUNDLE_EMPTY', async () => {
    const useless = TrustBundle.parseJwks(
      'example.org',
      jwks([{ ...x509Entry, use: 'enc' }, { ...x509Entry, x5c: undefined }, { ...x509Entry, kty: 'XYZ' }, { ...jwtEntry, kid: undefined }], { spiffe_sequence: 3 }),
    );
    expect(useless.x509Authorities).toHaveLength(0);
    expect(useless.jwtAuthorities.size).toBe(0);
    expect(useless.sequenceNumber).toBe(3);
    const set = new BundleSet([useless]);
    const [a, b] = await Promise.all([ca.issue('spiffe://example.org/agent/a'), ca.issue('spiffe://example.org/b', { signedBy: 'root' })]);
    expect(codeOf(() => validateX509Svid(a.certificates, set))).toBe('PKI_ERR_BUNDLE_EMPTY');
    expect(codeOf(() => validateX509Svid(b.certificates, set))).toBe('PKI_ERR_BUNDLE_EMPTY');
  });

  it.each<[string, string]>([
    ['not JSON', '{"keys": ['],
    ['JSON null', 'null'],
    ['a JSON array', '[]'],
    ['keys missing', '{}'],
    ['keys not an array', '{"keys": {}}'],
    ['keys a string', '{"keys": "x"}'],
    ['a key that is not an object', '{"keys": [1]}'],
    ['a key without kty', '{"keys": [{"use": "x509-svid"}]}'],
  ])('refuses %s with PKI_ERR_BUNDLE_MALFORMED', (_name, text) => {
    expect(codeOf(() => TrustBundle.parseJwks('example.org', text))).toBe('PKI_ERR_BUNDLE_MALFORMED');
  });

  it('refuses an x509-svid entry whose x5c holds no certificate', () => {
    const entry = { ...x509Entry, x5c: [Buffer.from('not a certificate').toString('base64')] };
    expect(codeOf(() => TrustBundle.parseJwks('example.org', jwks([entry])))).toBe('PKI_ERR_BUNDLE_MALFORMED');
  });

  it('refuses a jwt-svid entry that is not a valid public key', () => {
    const entry = { ...jwtEntry, x: 'AAAA' };
    expect(codeOf(() => TrustBundle.parseJwks('example.org', jwks([entry])))).toBe('PKI_ERR_BUNDLE_MALFORMED');
  });

  it('ignores a negative or fractional spiffe_sequence and a non-positive refresh hint', () => {
    const b = TrustBundle.parseJwks('example.org', jwks([x509Entry], { spiffe_sequence: -1, spiffe_refresh_hint: 0 }));
    expect(b.sequenceNumber).toBeUndefined();
    expect(b.refreshHintSeconds).toBeUndefined();
    const c = TrustBundle.parseJwks('example.org', jwks([x509Entry], { spiffe_sequence: 1.5 }));
    expect(c.sequenceNumber).toBeUndefined();
  });
});

describe('BundleSet', () => {
  it('looks bundles up by trust domain name', async () => {
    const evil = await createTestCA({ trustDomain: 'evil.org' });
    const set = new BundleSet([ca.bundle, evil.bundle]);
    expect(set.getBundle(TrustDomain.parse('example.org'))).toBe(ca.bundle);
    expect(set.getBundle(TrustDomain.parse('evil.org'))).toBe(evil.bundle);
    expect(set.getBundle(TrustDomain.parse('other.org'))).toBeUndefined();
    expect(set.bundles()).toHaveLength(2);
  });
});
