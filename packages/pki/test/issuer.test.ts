import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CA_FILES, CertificateAuthority, ISSUER_FILES, PkiError, SpiffeId, SvidIssuer, TrustBundle, newP256Key, validateX509Svid, BundleSet } from '../src/index.js';
import { privateKeyPem, publicKeyOf } from '../src/internal/crypto.js';

const run = promisify(execFile);

async function issuerDir(ca: CertificateAuthority, swap: Partial<Record<keyof typeof ISSUER_FILES, string>> = {}): Promise<string> {
  const caDir = await mkdtemp(join(tmpdir(), 'sb-ca-'));
  await ca.save(caDir);
  const dir = join(caDir, 'issuer');
  await mkdir(dir);
  for (const [k, name] of Object.entries(ISSUER_FILES)) {
    const override = swap[k as keyof typeof ISSUER_FILES];
    if (override !== undefined) await writeFile(join(dir, name), override);
    else await copyFile(join(caDir, name), join(dir, name));
  }
  return dir;
}

describe('SvidIssuer: the intermediate alone signs SVIDs', () => {
  it('loads from three files of a CA directory (no root key) and signs SVIDs that validate and that openssl verifies', async () => {
    const ca = await CertificateAuthority.create({ trustDomain: 'example.org' });
    const dir = await issuerDir(ca);
    expect(Object.values(ISSUER_FILES)).not.toContain(CA_FILES.rootKey);
    const issuer = await SvidIssuer.load(dir);
    expect(issuer.trustDomain.name).toBe('example.org');
    const id = SpiffeId.parse('spiffe://example.org/connector/crm');
    const chain = await issuer.sign(id, publicKeyOf(newP256Key()), { ttlSeconds: 120 });
    expect(validateX509Svid(chain, new BundleSet([ca.bundle()])).id.toString()).toBe(id.toString());
    expect(Date.parse((chain[0] as { validTo: string }).validTo) - Date.now()).toBeLessThanOrEqual(120_000);
    const leaf = join(dir, 'leaf.pem');
    await writeFile(leaf, chain[0]!.toString());
    const { stdout } = await run('openssl', ['verify', '-CAfile', join(dir, ISSUER_FILES.bundle), '-untrusted', join(dir, ISSUER_FILES.intermediate), leaf]);
    expect(stdout.trim()).toBe(`${leaf}: OK`);
  });

  it('is what a CertificateAuthority signs with', async () => {
    const ca = await CertificateAuthority.create({ trustDomain: 'example.org' });
    expect(ca.issuer().certificate.fingerprint256).toBe(ca.intermediateCertificate.fingerprint256);
    expect(() => ca.issuer().checkId(SpiffeId.parse('spiffe://other.org/a'))).toThrow(/outside this CA's trust domain/);
  });

  it.each<[string, (ca: CertificateAuthority, other: CertificateAuthority) => Partial<Record<keyof typeof ISSUER_FILES, string>>, string, RegExp]>([
    ['a key that is not the intermediate\'s', () => ({ intermediateKey: privateKeyPem(newP256Key()) }), 'PKI_ERR_CA_KEY_MISMATCH', /does not belong/],
    ['a bundle of another CA', (_ca, other) => ({ bundle: other.bundle().toPem() }), 'PKI_ERR_CA_KEY_MISMATCH', /not signed by a root of the bundle/],
    ['a file that is not a certificate', () => ({ intermediate: 'hello\n' }), 'PKI_ERR_CA_UNREADABLE', /not a PEM certificate/],
  ])('refuses %s', async (_label, swap, code, message) => {
    const ca = await CertificateAuthority.create({ trustDomain: 'example.org' });
    const other = await CertificateAuthority.create({ trustDomain: 'example.org' });
    const dir = await issuerDir(ca, swap(ca, other));
    const err = await SvidIssuer.load(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PkiError);
    expect(err).toMatchObject({ code, message });
  });

  it('refuses a missing directory, naming the file', async () => {
    await expect(SvidIssuer.load('/nonexistent/issuer')).rejects.toMatchObject({ code: 'PKI_ERR_CA_UNREADABLE', message: 'issuer: cannot read /nonexistent/issuer/intermediate.pem: ENOENT' });
  });

  it('keeps the bundle it hands out', async () => {
    const ca = await CertificateAuthority.create({ trustDomain: 'example.org' });
    const issuer = await SvidIssuer.load(await issuerDir(ca));
    expect(issuer.bundle.toPem()).toBe(TrustBundle.fromPem('example.org', ca.bundle().toPem()).toPem());
  });
});

