import { execFile } from 'node:child_process';
import type { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CA_FILES, CertificateAuthority } from '../src/ca.js';
import { PkiError, type PkiErrorCode } from '../src/errors.js';
import { IDENTITY_FILES, loadIdentityFiles, writeIdentityFiles } from '../src/identity-files.js';
import { readCertExtensions } from '../src/internal/cert-extensions.js';
import { BundleSet, TrustBundle } from '../src/trust-bundle.js';
import { validateX509Svid } from '../src/x509-svid.js';

const run = promisify(execFile);

async function codeOfAsync(fn: () => Promise<unknown>): Promise<PkiErrorCode | string> {
  try {
    await fn();
  } catch (err) {
    return err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`;
  }
  return 'no error';
}

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

let tmp: string;
let ca: CertificateAuthority;
let second: CertificateAuthority;
let n = 0;
const freshDir = () => join(tmp, `d${n++}`);

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'switchboard-pki-ca-'));
  [ca, second] = await Promise.all([
    CertificateAuthority.create({ trustDomain: 'example.org' }),
    CertificateAuthority.create({ trustDomain: 'example.org' }),
  ]);
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('CertificateAuthority save / load', () => {
  it('round-trips every certificate and key', async () => {
    const dir = freshDir();
    await ca.save(dir);
    expect((await readdir(dir)).sort()).toEqual(Object.values(CA_FILES).sort());
    const loaded = await CertificateAuthority.load(dir);
    expect(loaded.trustDomain.name).toBe('example.org');
    expect(loaded.rootCertificate.fingerprint256).toBe(ca.rootCertificate.fingerprint256);
    expect(loaded.intermediateCertificate.fingerprint256).toBe(ca.intermediateCertificate.fingerprint256);
    expect(loaded.jwtKeyId).toBe(ca.jwtKeyId);
    expect(loaded.jwtSigner().privateKey.export({ format: 'jwk' })).toEqual(ca.jwtSigner().privateKey.export({ format: 'jwk' }));
    expect(loaded.enrollmentSigner().keyId).toBe(ca.enrollmentSigner().keyId);
    // The loaded intermediate key still signs SVIDs the original bundle trusts.
    const svid = await loaded.issueX509Svid('spiffe://example.org/agent/a');
    expect(validateX509Svid(svid.certificates, new BundleSet([ca.bundle()])).id.toString()).toBe('spiffe://example.org/agent/a');
  });

  it('writes keys 0600 and certificates / bundles 0644', async () => {
    const dir = freshDir();
    await ca.save(dir);
    for (const f of [CA_FILES.rootKey, CA_FILES.intermediateKey, CA_FILES.jwtKey, CA_FILES.enrollmentKey]) {
      expect([f, await modeOf(join(dir, f))]).toEqual([f, 0o600]);
    }
    for (const f of [CA_FILES.root, CA_FILES.intermediate, CA_FILES.bundle, CA_FILES.bundleJwks, CA_FILES.meta]) {
      expect([f, await modeOf(join(dir, f))]).toEqual([f, 0o644]);
    }
  });

  it('writes bundle.pem and bundle.jwks.json that hold the root', async () => {
    const dir = freshDir();
    await ca.save(dir);
    const pem = TrustBundle.fromPem('example.org', await readFile(join(dir, CA_FILES.bundle)));
    expect(pem.x509Authorities.map((c) => c.fingerprint256)).toEqual([ca.rootCertificate.fingerprint256]);
    const jwks = TrustBundle.parseJwks('example.org', await readFile(join(dir, CA_FILES.bundleJwks)));
    expect(jwks.x509Authorities.map((c) => c.fingerprint256)).toEqual([ca.rootCertificate.fingerprint256]);
    expect([...jwks.jwtAuthorities.keys()]).toEqual([ca.jwtKeyId]);
    expect(jwks.sequenceNumber).toBe(1);
  });

  it('refuses to overwrite an existing CA unless forced', async () => {
    const dir = freshDir();
    await ca.save(dir);
    expect(await codeOfAsync(() => second.save(dir))).toBe('PKI_ERR_CA_EXISTS');
    expect((await CertificateAuthority.load(dir)).rootCertificate.fingerprint256).toBe(ca.rootCertificate.fingerprint256);
    await second.save(dir, { force: true });
    expect((await CertificateAuthority.load(dir)).rootCertificate.fingerprint256).toBe(second.rootCertificate.fingerprint256);
  });

  it('refuses when just one CA file is already there', async () => {
    const dir = freshDir();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, CA_FILES.rootKey), 'keep me');
    expect(await codeOfAsync(() => ca.save(dir))).toBe('PKI_ERR_CA_EXISTS');
    expect(await readFile(join(dir, CA_FILES.rootKey), 'utf8')).toBe('keep me');
    expect(await readdir(dir)).toEqual([CA_FILES.rootKey]);
  });

  // Public outputs (bundles, audit_pub.pem) are derived from the keys, so load does not need them.
  it.each(Object.values(CA_FILES).filter((f) => f !== CA_FILES.bundle && f !== CA_FILES.bundleJwks && f !== CA_FILES.auditPublicKey))(
    'load with %s missing → PKI_ERR_CA_UNREADABLE',
    async (file) => {
      const dir = freshDir();
      await ca.save(dir);
      await unlink(join(dir, file));
      expect(await codeOfAsync(() => CertificateAuthority.load(dir))).toBe('PKI_ERR_CA_UNREADABLE');
    },
  );

  it('load of a directory that does not exist → PKI_ERR_CA_UNREADABLE, with how to make one', async () => {
    expect(await codeOfAsync(() => CertificateAuthority.load(join(tmp, 'nope')))).toBe('PKI_ERR_CA_UNREADABLE');
    await expect(CertificateAuthority.load(join(tmp, 'nope'))).rejects.toThrow(
      `ca: cannot read ${join(tmp, 'nope', 'ca.json')}: ENOENT; is ${join(tmp, 'nope')} a CA directory? Create one with \`switchboard ca init --trust-domain <td> --dir ${join(tmp, 'nope')}\``,
    );
  });

  it.each<[string, string, string]>([
    ['ca.json not JSON', CA_FILES.meta, '{'],
    ['ca.json with an invalid trust domain', CA_FILES.meta, '{"trustDomain":"Example.org"}'],
    ['root.pem not a certificate', CA_FILES.root, 'junk'],
    ['intermediate_key.pem not a key', CA_FILES.intermediateKey, 'junk'],
  ])('load with %s → PKI_ERR_CA_UNREADABLE', async (_name, file, content) => {
    const dir = freshDir();
    await ca.save(dir);
    await writeFile(join(dir, file), content);
    expect(await codeOfAsync(() => CertificateAuthority.load(dir))).toBe('PKI_ERR_CA_UNREADABLE');
  });

  it.each<[string, string]>([
    ['root_key.pem', CA_FILES.rootKey],
    ['intermediate_key.pem', CA_FILES.intermediateKey],
  ])('load with %s swapped for another CA\'s → PKI_ERR_CA_KEY_MISMATCH', async (_name, file) => {
    const dir = freshDir();
    const otherDir = freshDir();
    await Promise.all([ca.save(dir), second.save(otherDir)]);
    await copyFile(join(otherDir, file), join(dir, file));
    expect(await codeOfAsync(() => CertificateAuthority.load(dir))).toBe('PKI_ERR_CA_KEY_MISMATCH');
  });

  it('load with intermediate (cert + key) from another CA → PKI_ERR_CA_KEY_MISMATCH (not signed by this root)', async () => {
    const dir = freshDir();
    const otherDir = freshDir();
    await Promise.all([ca.save(dir), second.save(otherDir)]);
    await copyFile(join(otherDir, CA_FILES.intermediate), join(dir, CA_FILES.intermediate));
    await copyFile(join(otherDir, CA_FILES.intermediateKey), join(dir, CA_FILES.intermediateKey));
    expect(await codeOfAsync(() => CertificateAuthority.load(dir))).toBe('PKI_ERR_CA_KEY_MISMATCH');
  });
});

describe('CA certificates are SVID signing certificates (X509-SVID §3.2, §4)', () => {
  it.each<[string, () => X509Certificate]>([
    ['root', () => ca.rootCertificate],
    ['intermediate', () => ca.intermediateCertificate],
  ])('%s: cA=true, SPIFFE ID without a path, key usage critical keyCertSign', (_name, cert) => {
    const c = cert();
    expect(c.ca).toBe(true);
    expect(c.subjectAltName).toBe('URI:spiffe://example.org');
    const ext = readCertExtensions(c.raw);
    expect(ext.ca).toBe(true);
    expect(ext.uris).toEqual(['spiffe://example.org']);
    expect(ext.keyUsageCritical).toBe(true);
    expect((ext.keyUsage ?? 0) & 0x20).toBe(0x20); // keyCertSign
    expect((ext.keyUsage ?? 0) & 0x01).toBe(0); // never digitalSignature on a signing cert
  });

  it('root is self-signed, intermediate is signed by the root', () => {
    expect(ca.rootCertificate.verify(ca.rootCertificate.publicKey)).toBe(true);
    expect(ca.intermediateCertificate.checkIssued(ca.rootCertificate)).toBe(true);
    expect(ca.intermediateCertificate.verify(ca.rootCertificate.publicKey)).toBe(true);
    expect(ca.intermediateCertificate.verify(second.rootCertificate.publicKey)).toBe(false);
  });

  it.each<[string, () => X509Certificate]>([
    ['root', () => ca.rootCertificate],
    ['intermediate', () => ca.intermediateCertificate],
  ])('openssl agrees for the %s', async (_name, cert) => {
    const dir = freshDir();
    await mkdir(dir, { recursive: true });
    const file = join(dir, 'cert.pem');
    await writeFile(file, cert().toString());
    const { stdout } = await run('openssl', ['x509', '-in', file, '-noout', '-text']);
    expect(stdout).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE/);
    expect(stdout).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\s/);
    expect(stdout).toMatch(/URI:spiffe:\/\/example\.org\s/);
    expect(stdout).not.toMatch(/URI:spiffe:\/\/example\.org\//);
  });

  it('never lets an SVID outlive the intermediate', async () => {
    const short = await CertificateAuthority.create({ trustDomain: 'example.org', intermediateTtlSeconds: 600 });
    const svid = await short.issueX509Svid('spiffe://example.org/agent/a');
    expect(Date.parse(svid.leaf.validTo)).toBeLessThanOrEqual(Date.parse(short.intermediateCertificate.validTo));
  });

  it('refuses an invalid trust domain', async () => {
    expect(await codeOfAsync(() => CertificateAuthority.create({ trustDomain: 'Example.org' }))).toBe('PKI_ERR_ID_TRUST_DOMAIN_CHARS');
  });
});

describe('identity files', () => {
  it('round-trips svid.pem, svid_key.pem and bundle.pem', async () => {
    const dir = freshDir();
    const svid = await ca.issueX509Svid('spiffe://example.org/agent/a');
    await writeIdentityFiles(dir, { svid, bundle: ca.bundle() });
    const got = await loadIdentityFiles(dir);
    expect(got.svid.id.toString()).toBe('spiffe://example.org/agent/a');
    expect(got.svid.certificates.map((c) => c.fingerprint256)).toEqual(svid.certificates.map((c) => c.fingerprint256));
    expect(got.svid.privateKeyPem()).toBe(svid.privateKeyPem());
    expect(got.bundle.trustDomain.name).toBe('example.org');
    expect(got.bundle.x509Authorities.map((c) => c.fingerprint256)).toEqual([ca.rootCertificate.fingerprint256]);
    // Leaf first, then the intermediate — the order spiffe-helper writes.
    const pem = await readFile(join(dir, IDENTITY_FILES.certificates), 'utf8');
    expect(pem).toBe(svid.leaf.toString() + ca.intermediateCertificate.toString());
    expect(validateX509Svid(got.svid.certificates, new BundleSet([got.bundle])).id.toString()).toBe('spiffe://example.org/agent/a');
  });

  it('writes svid_key.pem 0600', async () => {
    const dir = freshDir();
    await writeIdentityFiles(dir, { svid: await ca.issueX509Svid('spiffe://example.org/agent/a'), bundle: ca.bundle() });
    expect(await modeOf(join(dir, IDENTITY_FILES.privateKey))).toBe(0o600);
    expect(await modeOf(join(dir, IDENTITY_FILES.certificates))).toBe(0o644);
    expect(await modeOf(join(dir, IDENTITY_FILES.bundle))).toBe(0o644);
  });

  it.each(Object.values(IDENTITY_FILES))('refuses with PKI_ERR_FILE_EXISTS when %s is there, and writes nothing', async (file) => {
    const dir = freshDir();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, file), 'keep me');
    const svid = await ca.issueX509Svid('spiffe://example.org/agent/a');
    expect(await codeOfAsync(() => writeIdentityFiles(dir, { svid, bundle: ca.bundle() }))).toBe('PKI_ERR_FILE_EXISTS');
    expect(await readdir(dir)).toEqual([file]);
    expect(await readFile(join(dir, file), 'utf8')).toBe('keep me');
  });

  it('replaces existing files with force', async () => {
    const dir = freshDir();
    const [a, b] = await Promise.all([
      ca.issueX509Svid('spiffe://example.org/agent/a'),
      ca.issueX509Svid('spiffe://example.org/agent/b'),
    ]);
    await writeIdentityFiles(dir, { svid: a, bundle: ca.bundle() });
    expect(await codeOfAsync(() => writeIdentityFiles(dir, { svid: b, bundle: ca.bundle() }))).toBe('PKI_ERR_FILE_EXISTS');
    expect((await loadIdentityFiles(dir)).svid.id.toString()).toBe('spiffe://example.org/agent/a');
    await writeIdentityFiles(dir, { svid: b, bundle: ca.bundle() }, { force: true });
    expect((await loadIdentityFiles(dir)).svid.id.toString()).toBe('spiffe://example.org/agent/b');
    expect(await modeOf(join(dir, IDENTITY_FILES.privateKey))).toBe(0o600);
    // No temp files left behind by the atomic writes.
    expect((await readdir(dir)).sort()).toEqual(Object.values(IDENTITY_FILES).sort());
  });

  it('load with a file missing → PKI_ERR_SVID_MALFORMED', async () => {
    const dir = freshDir();
    await writeIdentityFiles(dir, { svid: await ca.issueX509Svid('spiffe://example.org/agent/a'), bundle: ca.bundle() });
    await unlink(join(dir, IDENTITY_FILES.privateKey));
    expect(await codeOfAsync(() => loadIdentityFiles(dir))).toBe('PKI_ERR_SVID_MALFORMED');
  });

  it('load with a key of another identity → PKI_ERR_SVID_MALFORMED', async () => {
    const dir = freshDir();
    const otherDir = freshDir();
    await Promise.all([
      writeIdentityFiles(dir, { svid: await ca.issueX509Svid('spiffe://example.org/agent/a'), bundle: ca.bundle() }),
      writeIdentityFiles(otherDir, { svid: await ca.issueX509Svid('spiffe://example.org/agent/a'), bundle: ca.bundle() }),
    ]);
    await copyFile(join(otherDir, IDENTITY_FILES.privateKey), join(dir, IDENTITY_FILES.privateKey));
    expect(await codeOfAsync(() => loadIdentityFiles(dir))).toBe('PKI_ERR_SVID_MALFORMED');
  });
});
