import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { newP256Key } from '../src/ca.js';
import { isPkiError } from '../src/errors.js';
import { privateKeyPem } from '../src/internal/crypto.js';
import { createJwtSvidSigner, loadJwtSvidSigner } from '../src/jwt-svid-signer.js';
import { validateJwtSvid } from '../src/jwt-svid.js';
import { createTestCA, type TestCA } from '../src/testing/index.js';
import { BundleSet } from '../src/trust-bundle.js';

const SUB = 'spiffe://example.org/agent/support';
const NOW = new Date('2030-01-01T00:00:00Z');

let t: TestCA;
beforeAll(async () => {
  t = await createTestCA();
});

describe('createJwtSvidSigner', () => {
  it('mints tokens that validate against the CA bundle, with the CA kid and the asked TTL', async () => {
    const { privateKey, keyId } = t.ca.jwtSigner();
    const signer = createJwtSvidSigner({ trustDomain: 'example.org', privateKey });
    expect(signer.keyId).toBe(keyId);
    const token = signer.sign({ subject: SUB, audience: 'crm', ttlSeconds: 120, now: NOW });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', kid: keyId, typ: 'JWT' });
    const v = await validateJwtSvid(token, new BundleSet([t.ca.bundle()]), { audience: 'crm', now: NOW });
    expect(v.id.toString()).toBe(SUB);
    expect(v.expiresAt.getTime() - NOW.getTime()).toBe(120_000);
    await expect(validateJwtSvid(token, new BundleSet([t.ca.bundle()]), { audience: 'tickets', now: NOW })).rejects.toMatchObject({
      code: 'PKI_ERR_JWT_AUD_MISMATCH',
    });
  });

  it('loads the key from a PEM file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-jwt-'));
    const path = join(dir, 'jwt_key.pem');
    await writeFile(path, privateKeyPem(t.ca.jwtSigner().privateKey));
    const signer = await loadJwtSvidSigner(path, { trustDomain: 'example.org', maxTtlSeconds: 300 });
    const token = signer.sign({ subject: SUB, audience: 'crm' });
    await expect(validateJwtSvid(token, new BundleSet([t.ca.bundle()]), { audience: 'crm' })).resolves.toBeDefined();
    expect(() => signer.sign({ subject: SUB, audience: 'crm', ttlSeconds: 301 })).toThrow(/TTL/);
    await expect(loadJwtSvidSigner(join(dir, 'missing.pem'), { trustDomain: 'example.org' })).rejects.toMatchObject({ code: 'PKI_ERR_CA_UNREADABLE' });
    await writeFile(join(dir, 'bad.pem'), 'not a key');
    await expect(loadJwtSvidSigner(join(dir, 'bad.pem'), { trustDomain: 'example.org' })).rejects.toMatchObject({ code: 'PKI_ERR_CA_UNREADABLE' });
  });

  it('refuses subjects outside its trust domain, root IDs and a key the bundle does not hold', async () => {
    const signer = createJwtSvidSigner({ trustDomain: 'example.org', privateKey: newP256Key() });
    expect(() => signer.sign({ subject: 'spiffe://other.org/agent/a', audience: 'crm' })).toThrow(expect.objectContaining({ code: 'PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN' }));
    expect(() => signer.sign({ subject: 'spiffe://example.org', audience: 'crm' })).toThrow(expect.objectContaining({ code: 'PKI_ERR_SVID_ROOT_PATH' }));
    expect(() => signer.sign({ subject: SUB, audience: '' })).toThrow(TypeError);
    const err = await validateJwtSvid(signer.sign({ subject: SUB, audience: 'crm' }), new BundleSet([t.ca.bundle()]), { audience: 'crm' }).catch((e: unknown) => e);
    expect(isPkiError(err, 'PKI_ERR_JWT_KEY_NOT_FOUND')).toBe(true);
  });
});
