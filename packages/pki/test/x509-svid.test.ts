import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { leafSpec, newP256Key } from '../src/ca.js';
import { PkiError, type PkiErrorCode } from '../src/errors.js';
import { buildCertificate, type CertSpec } from '../src/internal/cert-builder.js';
import { publicKeyOf } from '../src/internal/crypto.js';
import { SpiffeId } from '../src/spiffe-id.js';
import { createTestCA, type TestCA, type TestIssueOptions } from '../src/testing/index.js';
import { BundleSet, TrustBundle } from '../src/trust-bundle.js';
import {
  checkLeaf,
  DEFAULT_SVID_TTL_SECONDS,
  MAX_SVID_TTL_SECONDS,
  SVID_BACKDATE_SECONDS,
  validateX509Svid,
  X509Svid,
} from '../src/x509-svid.js';

// Key usage bits as RFC 5280 / @peculiar/x509 number them; spelled out here rather than imported
// from src so a wrong constant in src cannot make these tests agree with it.
const KU = { digitalSignature: 0x01, keyEncipherment: 0x04, keyAgreement: 0x10, keyCertSign: 0x20, cRLSign: 0x40 } as const;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const CODE_SIGNING = '1.3.6.1.5.5.7.3.3';

const ID = 'spiffe://example.org/agent/a';

function codeOf(fn: () => unknown): PkiErrorCode | string {
  try {
    fn();
  } catch (err) {
    return err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`;
  }
  return 'no error';
}

async function codeOfAsync(fn: () => Promise<unknown>): Promise<PkiErrorCode | string> {
  try {
    await fn();
  } catch (err) {
    return err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`;
  }
  return 'no error';
}

function fingerprints(certs: readonly X509Certificate[]): string[] {
  return certs.map((c) => c.fingerprint256);
}

// The CA keys are private; the testing helper reaches them the same way.
function keysOf(t: TestCA): { rootKey: KeyObject; intermediateKey: KeyObject } {
  return t.ca as unknown as { rootKey: KeyObject; intermediateKey: KeyObject };
}

let ca: TestCA; // example.org, the trusted CA
let other: TestCA; // a second CA that also calls itself example.org
let evil: TestCA; // evil.org

beforeAll(async () => {
  [ca, other, evil] = await Promise.all([
    createTestCA({ trustDomain: 'example.org' }),
    createTestCA({ trustDomain: 'example.org' }),
    createTestCA({ trustDomain: 'evil.org' }),
  ]);
});

describe('validateX509Svid — a well-formed SVID', () => {
  it('validates to its ID, and the verified chain runs leaf → intermediate → root', async () => {
    const svid = await ca.issue(ID);
    const got = validateX509Svid(svid.certificates, ca.bundles);
    expect(got.id.toString()).toBe(ID);
    expect(fingerprints(got.chain)).toEqual(
      fingerprints([svid.leaf, ca.ca.intermediateCertificate, ca.ca.rootCertificate]),
    );
    expect(got.chain.at(-1)?.fingerprint256).toBe(ca.ca.rootCertificate.fingerprint256);
  });

  it('accepts a leaf signed directly by the root (no intermediate)', async () => {
    const svid = await ca.issue(ID, { signedBy: 'root' });
    expect(svid.certificates).toHaveLength(1);
    const got = validateX509Svid(svid.certificates, ca.bundles);
    expect(got.id.toString()).toBe(ID);
    expect(fingerprints(got.chain)).toEqual(fingerprints([svid.leaf, ca.ca.rootCertificate]));
  });

  it('skips unrelated certificates the peer also presented', async () => {
    const svid = await ca.issue(ID);
    const chain = [svid.leaf, other.ca.intermediateCertificate, ca.ca.intermediateCertificate];
    const got = validateX509Svid(chain, ca.bundles);
    expect(fingerprints(got.chain)).toEqual(
      fingerprints([svid.leaf, ca.ca.intermediateCertificate, ca.ca.rootCertificate]),
    );
  });

  it('validates an SVID of another trust domain against that trust domain\'s bundle', async () => {
    const svid = await evil.issue('spiffe://evil.org/agent/x');
    const both = new BundleSet([ca.bundle, evil.bundle]);
    expect(validateX509Svid(svid.certificates, both).id.toString()).toBe('spiffe://evil.org/agent/x');
  });

  it('checkLeaf returns the ID of a well-formed leaf', async () => {
    const svid = await ca.issue(ID);
    expect(checkLeaf(svid.leaf).toString()).toBe(ID);
  });
});

describe('validateX509Svid — leaf rules (X509-SVID §3.1, §4, §5.2)', () => {
  it.each<[string, TestIssueOptions, PkiErrorCode]>([
    ['two URI SANs', { uris: [ID, 'spiffe://example.org/agent/b'] }, 'PKI_ERR_SVID_MULTIPLE_URI_SANS'],
    ['a SPIFFE URI SAN and a second, non-SPIFFE one', { uris: [ID, 'https://x'] }, 'PKI_ERR_SVID_MULTIPLE_URI_SANS'],
    ['no URI SAN', { uris: [] }, 'PKI_ERR_SVID_NO_URI_SAN'],
    ['URI SAN not a SPIFFE ID', { uris: ['https://x'] }, 'PKI_ERR_SVID_INVALID_URI_SAN'],
    ['URI SAN with an uppercase trust domain', { uris: ['spiffe://Example.org/agent/a'] }, 'PKI_ERR_SVID_INVALID_URI_SAN'],
    ['URI SAN with a trailing slash', { uris: ['spiffe://example.org/agent/a/'] }, 'PKI_ERR_SVID_INVALID_URI_SAN'],
    ['root ID (no path)', { uris: ['spiffe://example.org'] }, 'PKI_ERR_SVID_ROOT_PATH'],
    ['cA=true', { ca: true }, 'PKI_ERR_SVID_LEAF_IS_CA'],
    ['key usage missing', { keyUsage: null }, 'PKI_ERR_SVID_KEY_USAGE_MISSING'],
    ['key usage not critical', { keyUsageCritical: false }, 'PKI_ERR_SVID_KEY_USAGE_NOT_CRITICAL'],
    ['no digitalSignature', { keyUsage: KU.keyEncipherment }, 'PKI_ERR_SVID_KEY_USAGE_NO_DIGITAL_SIGNATURE'],
    ['keyCertSign', { keyUsage: KU.digitalSignature | KU.keyCertSign }, 'PKI_ERR_SVID_KEY_USAGE_CERT_SIGN'],
    ['cRLSign', { keyUsage: KU.digitalSignature | KU.cRLSign }, 'PKI_ERR_SVID_KEY_USAGE_CRL_SIGN'],
    ['EKU with only serverAuth', { eku: [SERVER_AUTH] }, 'PKI_ERR_SVID_EKU_INCOMPLETE'],
    ['EKU with only clientAuth', { eku: [CLIENT_AUTH] }, 'PKI_ERR_SVID_EKU_INCOMPLETE'],
    ['EKU with neither', { eku: [CODE_SIGNING] }, 'PKI_ERR_SVID_EKU_INCOMPLETE'],
  ])('refuses %s', async (_name, options, code) => {
    const svid = await ca.issue(ID, options);
    expect(codeOf(() => validateX509Svid(svid.certificates, ca.bundles))).toBe(code);
    expect(codeOf(() => checkLeaf(svid.leaf))).toBe(code);
    // X509Svid.parse applies the same leaf rules to files on disk.
    expect(codeOf(() => X509Svid.parse(svid.certificatesPem(), svid.privateKeyPem()))).toBe(code);
  });

  it.each<[string, TestIssueOptions]>([
    ['EKU absent (EKU is optional)', { eku: null }],
    ['EKU with serverAuth, clientAuth and more', { eku: [SERVER_AUTH, CLIENT_AUTH, CODE_SIGNING] }],
    ['EKU with clientAuth listed first', { eku: [CLIENT_AUTH, SERVER_AUTH] }],
    ['key usage digitalSignature + keyEncipherment', { keyUsage: KU.digitalSignature | KU.keyEncipherment }],
    ['key usage digitalSignature + keyAgreement', { keyUsage: KU.digitalSignature | KU.keyAgreement }],
    ['cA=false stated explicitly', { ca: false }],
  ])('accepts %s', async (_name, options) => {
    const svid = await ca.issue(ID, options);
    expect(validateX509Svid(svid.certificates, ca.bundles).id.toString()).toBe(ID);
    expect(X509Svid.parse(svid.certificatesPem(), svid.privateKeyPem()).id.toString()).toBe(ID);
  });

  it('refuses a signing certificate (the CA intermediate) presented as the leaf', () => {
    const intermediate = ca.ca.intermediateCertificate;
    // The intermediate breaks two leaf rules (root-only SPIFFE ID, cA=true); the ID is checked first.
    expect(codeOf(() => validateX509Svid([intermediate, ca.ca.rootCertificate], ca.bundles))).toBe('PKI_ERR_SVID_ROOT_PATH');
    expect(codeOf(() => validateX509Svid([ca.ca.rootCertificate], ca.bundles))).toBe('PKI_ERR_SVID_ROOT_PATH');
  });

  it('refuses a leaf that looks like a signing certificate but has a workload path', async () => {
    const svid = await ca.issue(ID, { ca: true, keyUsage: KU.keyCertSign | KU.cRLSign });
    expect(codeOf(() => validateX509Svid(svid.certificates, ca.bundles))).toBe('PKI_ERR_SVID_LEAF_IS_CA');
  });
});

describe('validateX509Svid — validity period and clock skew', () => {
  it('refuses an expired leaf', async () => {
    const svid = await ca.issue(ID, { expired: true });
    expect(codeOf(() => validateX509Svid(svid.certificates, ca.bundles))).toBe('PKI_ERR_SVID_EXPIRED');
  });

  it('refuses a leaf that is not yet valid', async () => {
    const svid = await ca.issue(ID, { notYetValid: true });
    expect(codeOf(() => validateX509Svid(svid.certificates, ca.bundles))).toBe('PKI_ERR_SVID_NOT_YET_VALID');
  });

  it('a leaf that expired 20 s ago passes with the default 30 s skew and fails with skew 0', async () => {
    // Issued so that its one-hour lifetime ended 20 s ago on the wall clock.
    const svid = await ca.issue(ID, { now: new Date(Date.now() - DEFAULT_SVID_TTL_SECONDS * 1000 - 20_000) });
    const expiredFor = Date.now() - Date.parse(svid.leaf.validTo);
    expect(expiredFor).toBeGreaterThan(19_000);
    expect(expiredFor).toBeLessThan(29_000);
    expect(validateX509Svid(svid.certificates, ca.bundles).id.toString()).toBe(ID);
    expect(codeOf(() => validateX509Svid(svid.certificates, ca.bundles, { clockSkewSeconds: 0 }))).toBe('PKI_ERR_SVID_EXPIRED');
  });

  it('the skew bounds are exact on both ends (validated at a chosen time)', async () => {
    const svid = await ca.issue(ID);
    const from = Date.parse(svid.leaf.validFrom);
    const to = Date.parse(svid.leaf.validTo);
    const at = (ms: number, clockSkewSeconds?: number) => () =>
      validateX509Svid(svid.certificates, ca.bundles, { now: new Date(ms), ...(clockSkewSeconds === undefined ? {} : { clockSkewSeconds }) });

    expect(codeOf(at(to + 30_000))).toBe('no error');
    expect(codeOf(at(to + 31_000))).toBe('PKI_ERR_SVID_EXPIRED');
    expect(codeOf(at(to, 0))).toBe('no error');
    expect(codeOf(at(to + 1_000, 0))).toBe('PKI_ERR_SVID_EXPIRED');
    expect(codeOf(at(from - 30_000))).toBe('no error');
    expect(codeOf(at(from - 31_000))).toBe('PKI_ERR_SVID_NOT_YET_VALID');
    expect(codeOf(at(from - 20_000))).toBe('no error');
    expect(codeOf(at(from - 20_000, 0))).toBe('PKI_ERR_SVID_NOT_YET_VALID');
    expect(codeOf(at(to + 299_000, 300))).toBe('no error');
  });

  it('refuses a skew outside 0…300 s as a caller mistake (TypeError)', async () => {
    const svid = await ca.issue(ID);
    expect(() => validateX509Svid(svid.certificates, ca.bundles, { clockSkewSeconds: 301 })).toThrow(TypeError);
    expect(() => validateX509Svid(svid.certificates, ca.bundles, { clockSkewSeconds: -1 })).toThrow(TypeError);
    expect(() => validateX509Svid(svid.certificates, ca.bundles, { clockSkewSeconds: Number.NaN })).toThrow(TypeError);
  });
});

describe('validateX509Svid — trust', () => {
  it('refuses an SVID signed by another CA of the same trust domain name', async () => {
    const svid = await other.issue(ID);
    expect(validateX509Svid(svid.certificates, other.bundles).id.toString()).toBe(ID);
    expect(codeOf(() => validateX509Svid(svid.certificates, ca.bundles))).toBe('PKI_ERR_SVID_UNTRUSTED');
    // Presenting the foreign root as well changes nothing: only the bundle is an anchor.
    const withRoot = [...svid.certificates, other.ca.rootCertificate];
    expect(codeOf(() => validateX509Svid(withRoot, ca.bundles))).toBe('PKI_ERR_SVID_UNTRUSTED');
  });

  it('refuses a chain that lacks the intermediate', async () => {
    const svid = await ca.issue(ID);
    expect(codeOf(() => validateX509Svid([svid.leaf], ca.bundles))).toBe('PKI_ERR_SVID_UNTRUSTED');
  });

  it('refuses an SVID whose trust domain has no bundle', async () => {
    const svid = await evil.issue('spiffe://evil.org/agent/x');
    expect(codeOf(() => validateX509Svid(svid.certificates, ca.bundles))).toBe('PKI_ERR_BUNDLE_NOT_FOUND');
  });

  it('refuses an SVID whose bundle holds no X.509 authority', async () => {
    const svid = await ca.issue(ID);
    const empty = new BundleSet([new TrustBundle({ trustDomain: ca.trustDomain })]);
    expect(codeOf(() => validateX509Svid(svid.certificates, empty))).toBe('PKI_ERR_BUNDLE_EMPTY');
    const jwtOnly = new BundleSet([
      new TrustBundle({ trustDomain: ca.trustDomain, jwtAuthorities: ca.bundle.jwtAuthorities.values() }),
    ]);
    expect(codeOf(() => validateX509Svid(svid.certificates, jwtOnly))).toBe('PKI_ERR_BUNDLE_EMPTY');
  });

  it('refuses cross-domain confusion: evil.org\'s CA minting an example.org ID', async () => {
    const forged = await evil.issue(ID, { uris: [ID] });
    const both = new BundleSet([ca.bundle, evil.bundle]);
    expect(codeOf(() => validateX509Svid(forged.certificates, both))).toBe('PKI_ERR_SVID_UNTRUSTED');
    expect(codeOf(() => validateX509Svid([...forged.certificates, evil.ca.rootCertificate], both))).toBe('PKI_ERR_SVID_UNTRUSTED');
  });

  it('refuses an empty chain and an overlong one', async () => {
    const svid = await ca.issue(ID);
    expect(codeOf(() => validateX509Svid([], ca.bundles))).toBe('PKI_ERR_SVID_MALFORMED');
    const long = [svid.leaf, ...Array.from({ length: 8 }, () => ca.ca.intermediateCertificate)];
    expect(codeOf(() => validateX509Svid(long, ca.bundles))).toBe('PKI_ERR_SVID_CHAIN_INVALID');
  });
});

describe('validateX509Svid — signing certificate rules (X509-SVID §4.1, §4.3, §3.2)', () => {
  // Mints an intermediate under `ca`'s root bent per `bend`, and a well-formed leaf under it.
  async function chainThrough(bend: Partial<CertSpec>): Promise<X509Certificate[]> {
    const { rootKey } = keysOf(ca);
    const interKey = newP256Key();
    const now = Date.now();
    const spec: CertSpec = {
      subject: 'CN=Bent Intermediate, O=Test',
      publicKey: publicKeyOf(interKey),
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 3600_000),
      uris: ['spiffe://example.org'],
      basicConstraints: { ca: true, pathLength: 0 },
      keyUsage: { flags: KU.keyCertSign | KU.cRLSign, critical: true },
      ...bend,
    };
    const inter = await buildCertificate(spec, { certificate: ca.ca.rootCertificate, privateKey: rootKey });
    const leafKey = newP256Key();
    const leaf = await buildCertificate(
      leafSpec(SpiffeId.parse(ID), publicKeyOf(leafKey), new Date(now - 30_000), new Date(now + 1800_000)),
      { certificate: inter, privateKey: interKey },
    );
    return [leaf, inter];
  }

  it('accepts a well-formed intermediate minted the same way (control)', async () => {
    const chain = await chainThrough({});
    expect(validateX509Svid(chain, ca.bundles).id.toString()).toBe(ID);
  });

  it.each<[string, Partial<CertSpec>, PkiErrorCode]>([
    ['cA=false', { basicConstraints: { ca: false } }, 'PKI_ERR_SVID_SIGNING_CERT_NOT_CA'],
    ['no basic constraints', { basicConstraints: undefined }, 'PKI_ERR_SVID_SIGNING_CERT_NOT_CA'],
    ['key usage missing', { keyUsage: undefined }, 'PKI_ERR_SVID_KEY_USAGE_MISSING'],
    ['key usage not critical', { keyUsage: { flags: KU.keyCertSign, critical: false } }, 'PKI_ERR_SVID_KEY_USAGE_NOT_CRITICAL'],
    ['no keyCertSign', { keyUsage: { flags: KU.cRLSign | KU.digitalSignature, critical: true } }, 'PKI_ERR_SVID_SIGNING_CERT_NO_KEY_CERT_SIGN'],
    ['SPIFFE ID with a path', { uris: ['spiffe://example.org/ca'] }, 'PKI_ERR_SVID_SIGNING_CERT_PATH'],
    ['expired', { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) }, 'PKI_ERR_SVID_EXPIRED'],
  ])('refuses an intermediate with %s', async (_name, bend, code) => {
    const chain = await chainThrough(bend);
    expect(codeOf(() => validateX509Svid(chain, ca.bundles))).toBe(code);
  });

  it('accepts an intermediate with only keyCertSign (cRLSign is optional)', async () => {
    const chain = await chainThrough({ keyUsage: { flags: KU.keyCertSign, critical: true } });
    expect(validateX509Svid(chain, ca.bundles).id.toString()).toBe(ID);
  });

  it('enforces pathLenConstraint: a second intermediate under the CA intermediate (pathLen 0) is refused', async () => {
    const { intermediateKey } = keysOf(ca);
    const now = Date.now();
    const subKey = newP256Key();
    const sub = await buildCertificate(
      {
        subject: 'CN=Sub Intermediate, O=Test',
        publicKey: publicKeyOf(subKey),
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + 3600_000),
        uris: ['spiffe://example.org'],
        basicConstraints: { ca: true },
        keyUsage: { flags: KU.keyCertSign, critical: true },
      },
      { certificate: ca.ca.intermediateCertificate, privateKey: intermediateKey },
    );
    const leaf = await buildCertificate(
      leafSpec(SpiffeId.parse(ID), publicKeyOf(newP256Key()), new Date(now - 30_000), new Date(now + 1800_000)),
      { certificate: sub, privateKey: subKey },
    );
    expect(codeOf(() => validateX509Svid([leaf, sub, ca.ca.intermediateCertificate], ca.bundles))).toBe('PKI_ERR_SVID_CHAIN_INVALID');
  });
});

describe('X509Svid.parse', () => {
  it('reads svid.pem + svid_key.pem contents and names the leaf', async () => {
    const svid = await ca.issue(ID);
    const parsed = X509Svid.parse(svid.certificatesPem(), Buffer.from(svid.privateKeyPem()));
    expect(parsed.id.toString()).toBe(ID);
    expect(fingerprints(parsed.certificates)).toEqual(fingerprints(svid.certificates));
    expect(parsed.leaf.checkPrivateKey(parsed.privateKey)).toBe(true);
    expect(parsed.expiresAt.getTime()).toBe(Date.parse(svid.leaf.validTo));
  });

  it('refuses a key that does not belong to the leaf', async () => {
    const [a, b] = await Promise.all([ca.issue(ID), ca.issue('spiffe://example.org/agent/b')]);
    expect(codeOf(() => X509Svid.parse(a.certificatesPem(), b.privateKeyPem()))).toBe('PKI_ERR_SVID_MALFORMED');
  });

  it.each<[string, string]>([
    ['garbage', 'this is not PEM'],
    ['empty', ''],
    ['a key where the certificates belong', newP256Key().export({ type: 'pkcs8', format: 'pem' }) as string],
    ['a CERTIFICATE block of junk', '-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n'],
  ])('refuses certificates that are %s', async (_name, certsPem) => {
    const svid = await ca.issue(ID);
    expect(codeOf(() => X509Svid.parse(certsPem, svid.privateKeyPem()))).toBe('PKI_ERR_SVID_MALFORMED');
  });

  it.each<[string, () => string]>([
    ['garbage', () => 'not a key'],
    ['a P-384 key', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string],
    ['an Ed25519 key', () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string],
  ])('refuses a private key that is %s', async (_name, keyPem) => {
    const svid = await ca.issue(ID);
    expect(codeOf(() => X509Svid.parse(svid.certificatesPem(), keyPem()))).toBe('PKI_ERR_SVID_MALFORMED');
  });
});

describe('CertificateAuthority.signX509Svid', () => {
  const pub = () => publicKeyOf(newP256Key());

  it('issues [leaf, intermediate] with the default 1 h TTL and a 30 s backdate', async () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const chain = await ca.ca.signX509Svid(SpiffeId.parse(ID), pub(), { now });
    expect(chain).toHaveLength(2);
    expect(chain[1]?.fingerprint256).toBe(ca.ca.intermediateCertificate.fingerprint256);
    const leaf = chain[0] as X509Certificate;
    expect(DEFAULT_SVID_TTL_SECONDS).toBe(3600);
    expect(SVID_BACKDATE_SECONDS).toBe(30);
    expect(Date.parse(leaf.validFrom)).toBe(now.getTime() - 30_000);
    expect(Date.parse(leaf.validTo)).toBe(now.getTime() + 3600_000);
    expect(validateX509Svid(chain, ca.bundles).id.toString()).toBe(ID);
  });

  it('backdates against the wall clock when no time is given', async () => {
    const before = Date.now();
    const chain = await ca.ca.signX509Svid(SpiffeId.parse(ID), pub());
    const leaf = chain[0] as X509Certificate;
    const from = Date.parse(leaf.validFrom);
    expect(from).toBeGreaterThanOrEqual(before - 31_000);
    expect(from).toBeLessThanOrEqual(before - 29_000 + 2_000);
    expect(Date.parse(leaf.validTo) - from).toBe(3630_000);
  });

  it('issues exactly 24 h and refuses a second more', async () => {
    expect(MAX_SVID_TTL_SECONDS).toBe(86400);
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const chain = await ca.ca.signX509Svid(SpiffeId.parse(ID), pub(), { now, ttlSeconds: 86400 });
    expect(Date.parse((chain[0] as X509Certificate).validTo)).toBe(now.getTime() + 86400_000);
    expect(await codeOfAsync(() => ca.ca.signX509Svid(SpiffeId.parse(ID), pub(), { ttlSeconds: 86401 }))).toBe('PKI_ERR_SVID_TTL_TOO_LONG');
    expect(await codeOfAsync(() => ca.ca.issueX509Svid(ID, { ttlSeconds: 7 * 86400 }))).toBe('PKI_ERR_SVID_TTL_TOO_LONG');
  });

  it('refuses an ID outside its trust domain', async () => {
    expect(await codeOfAsync(() => ca.ca.signX509Svid(SpiffeId.parse('spiffe://evil.org/agent/a'), pub()))).toBe('PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN');
    expect(await codeOfAsync(() => ca.ca.signX509Svid(SpiffeId.parse('spiffe://example.org.evil/agent/a'), pub()))).toBe('PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN');
  });

  it('refuses a root ID', async () => {
    expect(await codeOfAsync(() => ca.ca.signX509Svid(SpiffeId.parse('spiffe://example.org'), pub()))).toBe('PKI_ERR_SVID_ROOT_PATH');
  });

  it('refuses a key that is not ECDSA P-256', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
    expect(await codeOfAsync(() => ca.ca.signX509Svid(SpiffeId.parse(ID), p384))).toBe('PKI_ERR_CSR_KEY_UNSUPPORTED');
  });
});
