import { spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newP256Key } from '../src/ca.js';
import { isPkiError, type PkiErrorCode } from '../src/errors.js';
import { exportPkcs12 } from '../src/pkcs12.js';
import { createTestCA, type TestCA } from '../src/testing/index.js';
import { X509Svid } from '../src/x509-svid.js';

const ID = 'spiffe://example.org/agent/support';
let t: TestCA;
let svid: X509Svid;
let dir: string;
let n = 0;

beforeAll(async () => {
  t = await createTestCA();
  svid = await t.ca.issueX509Svid(ID);
  dir = mkdtempSync(join(tmpdir(), 'p12-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** openssl runs `openssl pkcs12` on `p12` with the password in the environment (not argv). */
function openssl(p12: Buffer, password: string, extra: string[]): { ok: boolean; out: string; err: string } {
  const file = join(dir, `f${n++}.p12`);
  writeFileSync(file, p12);
  const r = spawnSync('openssl', ['pkcs12', '-in', file, '-passin', 'env:P12_PASS', ...extra], {
    encoding: 'utf8',
    env: { ...process.env, P12_PASS: password },
  });
  return { ok: r.status === 0, out: r.stdout, err: r.stderr };
}

const certsIn = (pem: string): X509Certificate[] =>
  (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((b) => new X509Certificate(b));

async function codeOf(f: () => unknown): Promise<PkiErrorCode | 'OK'> {
  try {
    await f();
    return 'OK';
  } catch (err) {
    if (!isPkiError(err)) throw err;
    expect(err.message).toMatch(/^pkcs12: /);
    return err.code;
  }
}

describe('exportPkcs12', () => {
  it.each([
    ['ASCII', 'correct horse battery staple'],
    ['non-ASCII (UTF-8, astral plane)', 'pässwörd-🔑-密码'],
    ['one character', 'x'],
  ])('openssl opens it with a %s password: key, leaf with the URI SAN, intermediate, root', (_name, password) => {
    const r = openssl(exportPkcs12(svid, t.bundle, password), password, ['-nodes']);
    expect(r.err).not.toMatch(/error/i);
    expect(r.ok).toBe(true);
    const certs = certsIn(r.out);
    expect(certs.map((c) => c.fingerprint256)).toEqual([
      svid.leaf.fingerprint256,
      t.ca.intermediateCertificate.fingerprint256,
      t.ca.rootCertificate.fingerprint256,
    ]);
    expect(certs[0]?.subjectAltName).toBe(`URI:${ID}`);
    const keyPem = r.out.match(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/)?.[0];
    expect(keyPem).toBeDefined();
    const key = createPrivateKey(keyPem as string);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(key.export({ type: 'pkcs8', format: 'der' }).equals(svid.privateKey.export({ type: 'pkcs8', format: 'der' }))).toBe(true);
    expect(svid.leaf.checkPrivateKey(key)).toBe(true);
  });

  it.each([
    ['a wrong password', 'wrong'],
    ['the password in another case', 'SECRET'],
    ['a prefix of the password', 'secre'],
    ['an empty password', ''],
  ])('openssl refuses %s', (_name, attempt) => {
    const r = openssl(exportPkcs12(svid, t.bundle, 'secret'), attempt, ['-nodes']);
    expect(r.ok).toBe(false);
    expect(r.err).toMatch(/mac verify error|invalid password/i);
    expect(r.out).not.toContain('PRIVATE KEY');
  });

  it('encrypts the key with AES-256 (PBES2/PBKDF2) and protects integrity with a SHA-256 MAC', () => {
    const r = openssl(exportPkcs12(svid, t.bundle, 'secret'), 'secret', ['-info', '-noout']);
    expect(r.ok).toBe(true);
    expect(r.err).toContain('Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC');
    expect(r.err).toMatch(/MAC: sha256/);
    expect(r.err).not.toMatch(/\bKey bag\b/); // never an unencrypted key bag
  });

  it.each([
    ['defaults to the SPIFFE ID', {}, ID],
    ['can be set', { friendlyName: 'support agent' }, 'support agent'],
  ])('friendlyName %s, on the key and the leaf, which share a localKeyID', (_name, opts, expected) => {
    const r = openssl(exportPkcs12(svid, t.bundle, 'secret', opts), 'secret', ['-nodes', '-info']);
    expect(r.ok).toBe(true);
    const names = [...r.out.matchAll(/friendlyName: (.*)/g)].map((m) => m[1]);
    expect(names).toEqual([expected, expected]);
    const ids = [...r.out.matchAll(/localKeyID: (.*)/g)].map((m) => m[1]?.trim());
    expect(ids).toHaveLength(2);
    expect(ids[0]).toBe(ids[1]);
  });

  it('Node TLS loads it with the right passphrase and refuses a wrong one', () => {
    const pfx = exportPkcs12(svid, t.bundle, 'secret');
    expect(() => createSecureContext({ pfx, passphrase: 'secret' })).not.toThrow();
    expect(() => createSecureContext({ pfx, passphrase: 'nope' })).toThrow();
  });

  it('uses fresh salts: two exports differ, both open', () => {
    const a = exportPkcs12(svid, t.bundle, 'secret');
    const b = exportPkcs12(svid, t.bundle, 'secret');
    expect(a.equals(b)).toBe(false);
    expect(openssl(a, 'secret', ['-nodes']).ok).toBe(true);
    expect(openssl(b, 'secret', ['-nodes']).ok).toBe(true);
  });

  it.each([
    ['a leaf signed by the root directly: leaf and root', async () => t.issue(ID, { signedBy: 'root' }), 2],
    ['a chain that already ends in the root: no duplicate', async () => new X509Svid(svid.id, [...svid.certificates, t.ca.rootCertificate], svid.privateKey), 3],
  ])('%s', async (_name, make, count) => {
    const s = await make();
    const r = openssl(exportPkcs12(s, t.bundle, 'secret'), 'secret', ['-nodes']);
    const certs = certsIn(r.out);
    expect(certs).toHaveLength(count);
    expect(certs[0]?.fingerprint256).toBe(s.leaf.fingerprint256);
    expect(certs[count - 1]?.fingerprint256).toBe(t.ca.rootCertificate.fingerprint256);
  });

  it.each([
    ['an empty password', async () => exportPkcs12(svid, t.bundle, ''), 'PKI_ERR_P12_PASSWORD_MISSING'],
    ['the bundle of another CA of the same trust domain', async () => exportPkcs12(svid, (await createTestCA()).bundle, 'secret'), 'PKI_ERR_SVID_UNTRUSTED'],
    ['the bundle of another trust domain', async () => exportPkcs12(svid, (await createTestCA({ trustDomain: 'other.org' })).bundle, 'secret'), 'PKI_ERR_SVID_UNTRUSTED'],
    ['a key that is not the leaf\'s', async () => exportPkcs12(new X509Svid(svid.id, svid.certificates, newP256Key()), t.bundle, 'secret'), 'PKI_ERR_SVID_MALFORMED'],
    ['a well-formed export', async () => exportPkcs12(svid, t.bundle, 'secret'), 'OK'],
  ] as const)('%s → %s', async (_name, f, code) => {
    expect(await codeOf(f)).toBe(code);
  });

  it.each([
    ['password undefined', () => exportPkcs12(svid, t.bundle, undefined as never)],
    ['password a Buffer', () => exportPkcs12(svid, t.bundle, Buffer.from('secret') as never)],
    ['friendlyName a number', () => exportPkcs12(svid, t.bundle, 'secret', { friendlyName: 7 as never })],
  ])('%s is a TypeError', (_name, f) => {
    expect(f).toThrow(TypeError);
  });
});
