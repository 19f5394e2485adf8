import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CertificateAuthority, createCsr, issueEnrollmentToken, newP256Key } from '@switchboard/pki';
import { createTestCA, type TestCA } from '@switchboard/pki/testing';
import { RenewalError, enrollWithRelay } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { CRM_CONNECTOR, STANDARD_POLICY } from '../helpers/ids.js';
import { startTestRelay, type TestRelay } from '../helpers/relay.js';

const run = promisify(execFile);
let t: TestRelay | undefined;
const dirs: string[] = [];

afterEach(async () => {
  await t?.close();
  t = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function withEnrollment(options: { ca?: TestCA; usedTokens?: string; policy?: typeof STANDARD_POLICY } = {}): Promise<TestRelay> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-enroll-'));
  dirs.push(dir);
  const usedTokens = options.usedTokens ?? join(dir, 'used.jsonl');
  return startTestRelay({
    ...(options.ca ? { ca: options.ca } : {}),
    ...(options.policy ? { policy: options.policy } : {}),
    relayOptions: (ca) => ({
      renewal: { issuer: ca.ca.issuer(), ttlSeconds: 600 },
      enrollment: { listen: '127.0.0.1:0', publicKey: ca.ca.enrollmentSigner().publicKey, usedTokens },
    }),
  });
}

function post(relay: TestRelay, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const url = new URL(relay.relay.enrollUrl as string);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: Number(url.port), path: '/v1/enroll', method: 'POST', ca: relay.ca.bundlePem, checkServerIdentity: () => undefined, agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown> }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const csrFor = (id: string) => createCsr(newP256Key(), { id });

describe('POST /v1/enroll on the enrollment listener', () => {
  it('exchanges a single-use token and a CSR made here for a first SVID; audited', async () => {
    t = await withEnrollment();
    const token = await issueEnrollmentToken(t.ca.ca, CRM_CONNECTOR);
    const identity = await enrollWithRelay(t.relay.enrollUrl as string, token, CRM_CONNECTOR, t.ca.bundle);
    expect(identity.svid.id.toString()).toBe(CRM_CONNECTOR);
    expect(Date.parse(identity.svid.leaf.validTo) - Date.now()).toBeGreaterThan(500_000);
    expect(t.audit.records.filter((r) => r.type === 'identity.enroll')).toEqual([
      expect.objectContaining({ peer: CRM_CONNECTOR, issued: true, newCertSerial: identity.svid.leaf.serialNumber, code: null }),
    ]);
    expect(t.relay.metrics().enrollments).toEqual({ issued: 1 });
  });

  it.each<[string, (ca: TestCA) => Promise<{ token: string; csr: string }>, number, string, RegExp]>([
    ['a token already used', async () => ({ token: '', csr: '' }), 409, 'ENROLL_ERR_TOKEN_USED', /already been redeemed/],
    ['an expired token', async (ca) => ({ token: await issueEnrollmentToken(ca.ca, CRM_CONNECTOR, { ttlSeconds: 60, now: new Date(Date.now() - 10 * 60_000) }), csr: await csrFor(CRM_CONNECTOR) }), 401, 'ENROLL_ERR_TOKEN_EXPIRED', /expired/],
    ['a CSR for another ID than the token', async (ca) => ({ token: await issueEnrollmentToken(ca.ca, CRM_CONNECTOR), csr: await csrFor(`${CRM_CONNECTOR}-2`) }), 403, 'ENROLL_ERR_ID_MISMATCH', /token is bound to spiffe:\/\/example\.org\/connector\/crm, not spiffe:\/\/example\.org\/connector\/crm-2/],
    ['a token signed by another key', async () => {
      const other = await CertificateAuthority.create({ trustDomain: 'example.org' });
      return { token: await issueEnrollmentToken(other, CRM_CONNECTOR), csr: await csrFor(CRM_CONNECTOR) };
    }, 401, 'ENROLL_ERR_TOKEN_INVALID', /signature verification failed/],
    ['a token for another trust domain', async () => {
      const other = await CertificateAuthority.create({ trustDomain: 'other.org' });
      return { token: await issueEnrollmentToken(other, 'spiffe://other.org/connector/crm'), csr: await csrFor('spiffe://other.org/connector/crm') };
    }, 401, 'ENROLL_ERR_TOKEN_INVALID', /./],
    ['a CSR naming no ID', async (ca) => ({ token: await issueEnrollmentToken(ca.ca, CRM_CONNECTOR), csr: await createCsr(newP256Key()) }), 403, 'ENROLL_ERR_ID_MISMATCH', /names none/],
    ['an RSA key (openssl)', async (ca) => ({ token: await issueEnrollmentToken(ca.ca, CRM_CONNECTOR), csr: (await run('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=crm', '-addext', `subjectAltName=URI:${CRM_CONNECTOR}`])).stdout }), 400, 'ENROLL_ERR_CSR_KEY', /only ECDSA P-256/],
    ['no token', async () => ({ token: undefined as unknown as string, csr: await csrFor(CRM_CONNECTOR) }), 400, 'ENROLL_ERR_MALFORMED', /enrollment token/],
  ])('refuses %s (its status and code), audited', async (label, make, status, code, message) => {
    const ca = await createTestCA({ trustDomain: 'example.org' });
    t = await withEnrollment({ ca });
    let body = await make(ca);
    if (label === 'a token already used') {
      const token = await issueEnrollmentToken(ca.ca, CRM_CONNECTOR);
      expect((await post(t, JSON.stringify({ token, csr: await csrFor(CRM_CONNECTOR) }))).status).toBe(200);
      body = { token, csr: await csrFor(CRM_CONNECTOR) };
    }
    const answer = await post(t, JSON.stringify(body));
    expect(answer).toEqual({ status, json: { code, error: expect.stringMatching(message) } });
    expect(t.audit.records.filter((r) => r.type === 'identity.enroll' && !r.issued)).toEqual([expect.objectContaining({ issued: false, code })]);
  });

  it('refuses an identity revoked in policy (403 ENROLL_ERR_REVOKED)', async () => {
    t = await withEnrollment({ policy: { ...STANDARD_POLICY, revoked: { ids: [CRM_CONNECTOR] } } });
    const answer = await post(t, JSON.stringify({ token: await issueEnrollmentToken(t.ca.ca, CRM_CONNECTOR), csr: await csrFor(CRM_CONNECTOR) }));
    expect(answer.json.code).toBe('ENROLL_ERR_REVOKED');
  });

  it('a token stays spent across a relay restart (the used-token file)', async () => {
    const ca = await createTestCA({ trustDomain: 'example.org' });
    const dir = await mkdtemp(join(tmpdir(), 'sb-enroll-store-'));
    dirs.push(dir);
    const usedTokens = join(dir, 'used.jsonl');
    t = await withEnrollment({ ca, usedTokens });
    const token = await issueEnrollmentToken(ca.ca, CRM_CONNECTOR);
    await enrollWithRelay(t.relay.enrollUrl as string, token, CRM_CONNECTOR, ca.bundle);
    await t.close();
    expect((await readFile(usedTokens, 'utf8')).trim().split('\n')).toHaveLength(1);
    t = await withEnrollment({ ca, usedTokens });
    const err = await enrollWithRelay(t.relay.enrollUrl as string, token, CRM_CONNECTOR, ca.bundle).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RenewalError);
    expect(err).toMatchObject({ code: 'ENROLL_ERR_TOKEN_USED', status: 409 });
  });

  it('the client refuses a relay that is not under /relay/ (no SVID is requested from it)', async () => {
    t = await withEnrollment();
    const token = await issueEnrollmentToken(t.ca.ca, CRM_CONNECTOR);
    const err = await enrollWithRelay(t.relay.enrollUrl as string, token, CRM_CONNECTOR, t.ca.bundle, { relayId: 'spiffe://example.org/relay/other' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'RENEW_ERR_TRANSPORT', message: expect.stringContaining('relay presented spiffe://example.org/relay/main, expected spiffe://example.org/relay/other') });
    expect(t.relay.metrics().enrollments).toEqual({});
  });
});
