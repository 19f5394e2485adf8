import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, webcrypto, type KeyObject, type X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newP256Key } from '../src/ca.js';
import { createCsr, issueFromCsr, parseCsr } from '../src/csr.js';
import { isPkiError, type PkiErrorCode } from '../src/errors.js';
import { readCertExtensions } from '../src/internal/cert-extensions.js';
import { ECDSA_SHA256, publicKeyOf, toSigningKey, toVerifyKey, x509 } from '../src/internal/crypto.js';
import { SpiffeId } from '../src/spiffe-id.js';
import { createTestCA, type TestCA } from '../src/testing/index.js';
import { validateX509Svid } from '../src/x509-svid.js';

const ID = 'spiffe://example.org/connector/crm';
let t: TestCA;
let dir: string;

beforeAll(async () => {
  t = await createTestCA();
  dir = mkdtempSync(join(tmpdir(), 'csr-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function codeOf(p: Promise<unknown>): Promise<PkiErrorCode | 'OK'> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    if (!isPkiError(err)) throw err;
    expect(err.message).toMatch(/^(csr|ca|spiffeid): /);
    return err.code;
  }
}

const spki = (k: KeyObject): string => k.export({ type: 'spki', format: 'der' }).toString('hex');
const toPem = (der: Buffer | ArrayBuffer, label = 'CERTIFICATE REQUEST'): string =>
  `-----BEGIN ${label}-----\n${Buffer.from(der as ArrayBuffer).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ${label}-----\n`;
const flipLastByte = (b: Buffer): void => {
  b.writeUInt8(b.readUInt8(b.length - 1) ^ 0x01, b.length - 1);
};
const derOf = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');

/** openssl runs the real openssl CLI: an independent producer and checker of CSRs. */
function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** opensslVerify runs `openssl req -verify`; OpenSSL 3.0 exits 0 either way, so read its verdict. */
function opensslVerify(pem: string): 'OK' | 'failure' | string {
  const r = spawnSync('openssl', ['req', '-verify', '-noout'], { input: pem, encoding: 'utf8' });
  return /verify OK/.test(r.stderr + r.stdout) ? 'OK' : /verify failure/.test(r.stderr + r.stdout) ? 'failure' : r.stderr;
}

/** opensslCsr makes a CSR with openssl for a freshly generated key of `alg` (openssl -newkey syntax). */
function opensslCsr(newkey: string[], name: string): string {
  const out = join(dir, `${name}.csr`);
  openssl(['req', '-new', ...newkey, '-nodes', '-keyout', join(dir, `${name}.key`), '-subj', '/CN=x', '-out', out]);
  return readFileSync(out, 'utf8');
}

/** rawCsr builds a CSR with @peculiar/x509 directly, with any keys and extensions. */
async function rawCsr(params: { keys: webcrypto.CryptoKeyPair; signingAlgorithm: webcrypto.EcdsaParams | webcrypto.Algorithm; extensions?: x509.Extension[] }): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=raw', ...params } as never);
  return csr.toString('pem');
}

describe('createCsr', () => {
  it.each([
    ['without an ID', {}, []],
    ['with an ID string', { id: ID }, [ID]],
    ['with a SpiffeId', { id: SpiffeId.parse(ID) }, [ID]],
  ])('%s parses back to the same key and requested URIs', async (_name, opts, uris) => {
    const key = newP256Key();
    const pem = await createCsr(key, opts);
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+-----END CERTIFICATE REQUEST-----\n$/);
    const parsed = await parseCsr(pem);
    expect(spki(parsed.publicKey)).toBe(spki(publicKeyOf(key)));
    expect(parsed.requestedUris).toEqual(uris);
  });

  it('makes a CSR openssl verifies: ECDSA-SHA256, P-256, the URI SAN requested', async () => {
    const pem = await createCsr(newP256Key(), { id: ID });
    expect(opensslVerify(pem)).toBe('OK');
    const text = openssl(['req', '-noout', '-text'], pem);
    expect(text).toContain('ecdsa-with-SHA256');
    expect(text).toMatch(/NIST CURVE: P-256|prime256v1/);
    expect(text).toContain(`URI:${ID}`);
    expect(text).toContain('CN = crm');
  });

  it.each([
    ['a P-384 key', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey],
    ['an RSA key', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey],
    ['an Ed25519 key', () => generateKeyPairSync('ed25519').privateKey],
  ])('refuses %s → PKI_ERR_CSR_KEY_UNSUPPORTED', async (_name, key) => {
    expect(await codeOf(createCsr(key()))).toBe('PKI_ERR_CSR_KEY_UNSUPPORTED');
  });

  it('a public key is a caller mistake (TypeError)', async () => {
    await expect(createCsr(publicKeyOf(newP256Key()))).rejects.toThrow(TypeError);
  });

  it('an invalid ID is refused with the SPIFFE ID rule', async () => {
    expect(await codeOf(createCsr(newP256Key(), { id: 'spiffe://example.org/a/' }))).toBe('PKI_ERR_ID_TRAILING_SLASH');
  });
});

describe('parseCsr', () => {
  let good: string;
  beforeAll(async () => {
    good = await createCsr(newP256Key(), { id: ID });
  });

  it.each([
    ['an empty string', () => ''],
    ['plain text', () => 'hello'],
    ['a certificate, not a request', () => t.bundlePem],
    ['a PEM block with a garbage body', () => toPem(Buffer.from('not a certificate request'))],
    ['a truncated request', () => toPem(derOf(good).subarray(0, 100))],
    ['an empty PEM block', () => '-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n'],
    ['mismatched labels', () => good.replace('END CERTIFICATE REQUEST', 'END NEW CERTIFICATE REQUEST')],
    ['two requests', () => good + good],
    ['over 16 KiB', () => good + '#'.repeat(16 * 1024)],
    ['bare DER in base64, no PEM armour', () => derOf(good).toString('base64')],
  ])('%s → PKI_ERR_CSR_MALFORMED', async (_name, make) => {
    expect(await codeOf(parseCsr(make()))).toBe('PKI_ERR_CSR_MALFORMED');
  });

  it('a non-string is malformed', async () => {
    expect(await codeOf(parseCsr(Buffer.from(good) as never))).toBe('PKI_ERR_CSR_MALFORMED');
  });

  it.each([
    ['surrounding text', () => `subject: whatever\n${good}\ntrailer`],
    ['the NEW CERTIFICATE REQUEST label', () => good.replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST')],
    ['CRLF line endings', () => good.replace(/\n/g, '\r\n')],
  ])('accepts %s', async (_name, make) => {
    expect(await codeOf(parseCsr(make()))).toBe('OK');
  });

  it('accepts a P-256 CSR made by openssl', async () => {
    const pem = opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'p256');
    const parsed = await parseCsr(pem);
    expect(parsed.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(parsed.requestedUris).toEqual([]);
  });

  it.each([
    ['P-384 (openssl)', () => opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], 'p384')],
    ['RSA (openssl)', () => opensslCsr(['-newkey', 'rsa:2048'], 'rsa')],
    ['Ed25519 (openssl)', () => opensslCsr(['-newkey', 'ed25519'], 'ed25519')],
    ['P-384 (peculiar)', async () => {
      const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify']);
      return rawCsr({ keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } as webcrypto.EcdsaParams });
    }],
  ])('%s → PKI_ERR_CSR_KEY_UNSUPPORTED', async (_name, make) => {
    expect(await codeOf(parseCsr(await make()))).toBe('PKI_ERR_CSR_KEY_UNSUPPORTED');
  });

  it.each([
    ['a byte of the subject changed', async () => {
      const pem = await createCsr(newP256Key(), { id: 'spiffe://example.org/connector/aaaa' });
      const der = derOf(pem);
      const at = der.indexOf(Buffer.from('aaaa'));
      expect(at).toBeGreaterThan(0);
      der[at] = 'b'.charCodeAt(0);
      return toPem(der);
    }],
    ['the last byte of the signature changed', () => {
      const der = derOf(good);
      flipLastByte(der);
      return toPem(der);
    }],
    ['the key of someone else, signed with ours (no proof of possession)', async () => {
      const victim = await toVerifyKey(publicKeyOf(newP256Key()));
      const attacker = await toSigningKey(newP256Key());
      return rawCsr({ keys: { publicKey: victim, privateKey: attacker }, signingAlgorithm: ECDSA_SHA256 });
    }],
  ])('%s → PKI_ERR_CSR_SIGNATURE_INVALID', async (_name, make) => {
    expect(await codeOf(parseCsr(await make()))).toBe('PKI_ERR_CSR_SIGNATURE_INVALID');
  });

  it('the tampered-signature case is otherwise well-formed (openssl reads it, but refuses the signature)', () => {
    const der = derOf(good);
    flipLastByte(der);
    expect(opensslVerify(good)).toBe('OK');
    expect(opensslVerify(toPem(der))).toBe('failure');
    expect(openssl(['req', '-noout', '-subject'], toPem(der))).toContain('crm');
  });
});

describe('issueFromCsr', () => {
  it('certifies the CSR key as the given ID; the result validates', async () => {
    const key = newP256Key();
    const chain = await issueFromCsr(t.ca, await createCsr(key, { id: ID }), ID);
    expect(chain).toHaveLength(2);
    const [leaf, intermediate] = chain as [X509Certificate, X509Certificate];
    expect(leaf.checkPrivateKey(key)).toBe(true);
    expect(intermediate.fingerprint256).toBe(t.ca.intermediateCertificate.fingerprint256);
    expect(validateX509Svid(chain, t.bundles).id.toString()).toBe(ID);
  });

  it('the CA decides: cA, keyCertSign, EKU and a different URI SAN in the request are all ignored', async () => {
    const key = newP256Key();
    const keys = { privateKey: await toSigningKey(key), publicKey: await toVerifyKey(publicKeyOf(key)) };
    const hostile = await rawCsr({
      keys,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 5, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning], true),
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: 'spiffe://example.org/admin' },
          { type: 'dns', value: 'relay.example.org' },
        ]),
      ],
    });
    // The request really asks for all of it…
    const asked = new x509.Pkcs10CertificateRequest(hostile);
    const bc = asked.extensions.find((e): e is x509.BasicConstraintsExtension => e instanceof x509.BasicConstraintsExtension);
    expect(bc?.ca).toBe(true);
    const ku = asked.extensions.find((e): e is x509.KeyUsagesExtension => e instanceof x509.KeyUsagesExtension);
    expect((ku?.usages ?? 0) & x509.KeyUsageFlags.keyCertSign).not.toBe(0);
    expect((await parseCsr(hostile)).requestedUris).toEqual(['spiffe://example.org/admin']);

    // …and gets a plain leaf for the ID the CA chose.
    const chain = await issueFromCsr(t.ca, hostile, SpiffeId.parse(ID));
    const leaf = chain[0] as X509Certificate;
    const ext = readCertExtensions(leaf.raw);
    expect(ext).toMatchObject({
      ca: false,
      keyUsage: 1, // digitalSignature only
      keyUsageCritical: true,
      eku: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
      uris: [ID],
      unknownCritical: [],
    });
    expect(leaf.subjectAltName).toBe(`URI:${ID}`);
    expect(leaf.checkPrivateKey(key)).toBe(true);
    expect(validateX509Svid(chain, t.bundles).id.toString()).toBe(ID);
  });

  it.each([
    ['default TTL (1 h)', {}, 3600],
    ['ttlSeconds 600', { ttlSeconds: 600 }, 600],
  ])('honours %s', async (_name, opts, ttl) => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const chain: X509Certificate[] = await issueFromCsr(t.ca, await createCsr(newP256Key()), ID, { ...opts, now });
    expect(Date.parse((chain[0] as X509Certificate).validTo) - now.getTime()).toBe(ttl * 1000);
  });

  it.each([
    ['an ID outside the trust domain', 'spiffe://other.org/connector/crm', async (): Promise<string> => createCsr(newP256Key()), {}, 'PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN'],
    ['the trust domain root', 'spiffe://example.org', async (): Promise<string> => createCsr(newP256Key()), {}, 'PKI_ERR_SVID_ROOT_PATH'],
    ['a malformed CSR', ID, async (): Promise<string> => 'nope', {}, 'PKI_ERR_CSR_MALFORMED'],
    ['a CSR for an RSA key', ID, async (): Promise<string> => opensslCsr(['-newkey', 'rsa:2048'], 'rsa2'), {}, 'PKI_ERR_CSR_KEY_UNSUPPORTED'],
    ['a TTL over 24 h', ID, async (): Promise<string> => createCsr(newP256Key()), { ttlSeconds: 86401 }, 'PKI_ERR_SVID_TTL_TOO_LONG'],
  ] as const)('refuses %s', async (_name, id, csr, opts, code) => {
    expect(await codeOf(issueFromCsr(t.ca, await csr(), id, opts))).toBe(code);
  });

  it('a forged CSR (someone else\'s key) is never certified', async () => {
    const victim = await toVerifyKey(publicKeyOf(newP256Key()));
    const forged = await rawCsr({ keys: { publicKey: victim, privateKey: await toSigningKey(newP256Key()) }, signingAlgorithm: ECDSA_SHA256 });
    expect(await codeOf(issueFromCsr(t.ca, forged, ID))).toBe('PKI_ERR_CSR_SIGNATURE_INVALID');
  });
});
