import { createPublicKey, generateKeyPairSync, verify as nodeVerify } from 'node:crypto';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import {
  AUDIT_KEY_FILES,
  AuditPublicKey,
  AuditSigningKey,
  checkpointMessage,
  generateAuditKey,
  isAuditError,
  loadAuditPublicKey,
  loadAuditSigningKey,
  writeAuditKeyFiles,
} from '../src/index.js';
import { tempDir } from './helpers.js';

describe('checkpoint keys', () => {
  it('generates PEM files, loads them and signs/verifies over canonical { seq, hash }', async () => {
    const dir = await tempDir();
    const key = generateAuditKey();
    expect(key.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(key.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(key.keyId).toMatch(/^[0-9a-f]{16}$/);
    const { privateKeyPath, publicKeyPath } = await writeAuditKeyFiles(dir, key);
    expect(privateKeyPath).toBe(join(dir, AUDIT_KEY_FILES.privateKey));
    expect((await stat(privateKeyPath)).mode & 0o777).toBe(0o600);
    const sk = await loadAuditSigningKey(privateKeyPath);
    const pk = await loadAuditPublicKey(publicKeyPath);
    expect(sk.keyId).toBe(key.keyId);
    expect(pk.keyId).toBe(key.keyId);
    const hash = 'ab'.repeat(32);
    const sig = sk.sign(7, hash);
    expect(pk.verify(7, hash, sig)).toBe(true);
    expect(pk.verify(8, hash, sig)).toBe(false);
    expect(pk.verify(7, 'cd'.repeat(32), sig)).toBe(false);
    expect(Buffer.from(checkpointMessage(7, hash)).toString()).toBe(`{"hash":"${hash}","seq":7}`);
    // Interop: the raw keys from JWK are what noble signs with; Node's own verifier agrees.
    expect(ed25519.verify(Buffer.from(sig, 'base64url'), checkpointMessage(7, hash), pk.raw)).toBe(true);
    expect(nodeVerify(null, checkpointMessage(7, hash), createPublicKey(key.publicKeyPem), Buffer.from(sig, 'base64url'))).toBe(true);
  });

  it('refuses to overwrite key files unless forced', async () => {
    const dir = await tempDir();
    await writeAuditKeyFiles(dir, generateAuditKey());
    await expect(writeAuditKeyFiles(dir, generateAuditKey())).rejects.toMatchObject({ code: 'AUDIT_ERR_FILE_EXISTS' });
    const second = generateAuditKey();
    await writeAuditKeyFiles(dir, second, { force: true });
    expect((await loadAuditPublicKey(join(dir, AUDIT_KEY_FILES.publicKey))).keyId).toBe(second.keyId);
  });

  it('rejects a key that is not Ed25519, a missing file and garbage', async () => {
    const dir = await tempDir();
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(join(dir, 'ec.pem'), ec.privateKey.export({ format: 'pem', type: 'pkcs8' }));
    await writeFile(join(dir, 'junk.pem'), 'not a key');
    for (const p of ['ec.pem', 'junk.pem', 'missing.pem']) {
      const err = await loadAuditSigningKey(join(dir, p)).catch((e: unknown) => e);
      expect(isAuditError(err, 'AUDIT_ERR_KEY_INVALID')).toBe(true);
    }
    expect(() => AuditPublicKey.fromPem(ec.publicKey.export({ format: 'pem', type: 'spki' }).toString())).toThrow(/Ed25519/);
  });

  it('accepts an OpenSSL-style PKCS#8 key and never prints the secret', async () => {
    const kp = generateKeyPairSync('ed25519');
    const sk = AuditSigningKey.fromPem(kp.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    const secretB64 = kp.privateKey.export({ format: 'jwk' }).d as string;
    expect(JSON.stringify(sk)).not.toContain(secretB64);
    expect(inspect(sk)).toBe(`AuditSigningKey { keyId: '${sk.keyId}' }`);
    expect(AuditPublicKey.fromPem(kp.publicKey.export({ format: 'pem', type: 'spki' }).toString()).keyId).toBe(sk.keyId);
  });

  it('refuses non-canonical signature encodings', () => {
    const k = AuditSigningKey.fromPem(generateAuditKey().privateKeyPem);
    const sig = k.sign(1, '00'.repeat(32));
    expect(k.publicKey.verify(1, '00'.repeat(32), `${sig}=`)).toBe(false);
    expect(k.publicKey.verify(1, '00'.repeat(32), sig.slice(0, -2))).toBe(false);
  });
});
