import { execFile } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { request } from 'node:https';
import { promisify } from 'node:util';
import { X509Svid, createCsr, newP256Key, type Identity } from '@switchboard/pki';
import { RelayTls, renewOverRelay, RenewalError } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_RENEWALS_PER_CERTIFICATE } from '../../src/listener/renew.js';
import { CRM_CONNECTOR, OUTSIDER, STANDARD_POLICY, SUPPORT } from '../helpers/ids.js';
import { startTestRelay, type Creds, type TestRelay } from '../helpers/relay.js';

const run = promisify(execFile);
let t: TestRelay | undefined;

afterEach(async () => {
  await t?.close();
  t = undefined;
});

function withRenewal(extra: Parameters<typeof startTestRelay>[0] = {}) {
  return startTestRelay({ ...extra, relayOptions: (ca) => ({ renewal: { issuer: ca.ca.issuer(), ttlSeconds: 600 } }) });
}

function post(relay: TestRelay, creds: Creds, body: string, method = 'POST'): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: relay.relay.port, path: '/v1/renew', method, cert: creds.cert, key: creds.key, ca: creds.ca, checkServerIdentity: () => undefined, agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(parts).toString('utf8') || '{}') as Record<string, unknown> }));
      },
    );
    req.on('error', reject);
    req.end(method === 'GET' ? undefined : body);
  });
}

function identityOf(relay: TestRelay, creds: Creds): Identity {
  return { svid: X509Svid.parse(creds.cert, creds.key), bundle: relay.ca.bundle };
}

async function csrFor(id: string): Promise<string> {
  return createCsr(newP256Key(), { id });
}

describe('POST /v1/renew', () => {
  it('renews an SVID: a fresh key made here, the same SPIFFE ID, a new serial, the bundle; audited and counted', async () => {
    t = await withRenewal();
    const creds = await t.creds(CRM_CONNECTOR);
    const current = identityOf(t, creds);
    const tls = new RelayTls(current, { untrusted: (m) => new Error(m) });
    const next = await renewOverRelay(t.relay.url, tls, { ttlSeconds: 120 });
    expect(next.svid.id.toString()).toBe(CRM_CONNECTOR);
    expect(next.svid.leaf.serialNumber).not.toBe(current.svid.leaf.serialNumber);
    expect(next.svid.privateKeyPem()).not.toBe(current.svid.privateKeyPem());
    const life = Date.parse(next.svid.leaf.validTo) - Date.now();
    expect(life).toBeGreaterThan(100_000);
    expect(life).toBeLessThanOrEqual(120_000);
    expect(next.bundle.toPem()).toBe(t.ca.bundle.toPem());
    expect(t.audit.records.filter((r) => r.type === 'identity.renew')).toEqual([
      expect.objectContaining({ peer: CRM_CONNECTOR, certSerial: current.svid.leaf.serialNumber, issued: true, newCertSerial: next.svid.leaf.serialNumber, code: null }),
    ]);
    expect(t.relay.metrics().renewals).toEqual({ issued: 1 });
    // The renewed identity authenticates, and renews in turn.
    const again = await renewOverRelay(t.relay.url, new RelayTls(next, { untrusted: (m) => new Error(m) }));
    expect(again.svid.id.toString()).toBe(CRM_CONNECTOR);
    expect(Date.parse(again.svid.leaf.validTo) - Date.now()).toBeGreaterThan(500_000); // the relay's ttl: 600 s
  });

  it.each<[string, (t: TestRelay, creds: Creds) => Promise<string>, number, string, RegExp]>([
    ['a CSR for another SPIFFE ID', async () => JSON.stringify({ csr: await csrFor(SUPPORT) }), 403, 'RENEW_ERR_ID_MISMATCH', /must name exactly the authenticated SPIFFE ID spiffe:\/\/example.org\/connector\/crm, not spiffe:\/\/example.org\/agent\/support\/alice/],
    ['a CSR that names no ID', async () => JSON.stringify({ csr: await createCsr(newP256Key()) }), 403, 'RENEW_ERR_ID_MISMATCH', /it names none/],
    ['a CSR for the current key', async (_t, creds) => JSON.stringify({ csr: await createCsr(createPrivateKey(creds.key), { id: CRM_CONNECTOR }) }), 400, 'RENEW_ERR_KEY_REUSED', /fresh key/],
    ['an RSA key (openssl)', async () => JSON.stringify({ csr: await rsaCsr() }), 400, 'RENEW_ERR_CSR_KEY', /only ECDSA P-256 keys/],
    ['a CSR whose signature does not verify', async () => JSON.stringify({ csr: tamper(await csrFor(CRM_CONNECTOR)) }), 400, 'RENEW_ERR_CSR_SIGNATURE', /signature/],
    ['a body that is not JSON', async () => 'csr=1', 400, 'RENEW_ERR_MALFORMED', /must be JSON/],
    ['a body without a csr', async () => '{"pem":"x"}', 400, 'RENEW_ERR_MALFORMED', /must be JSON/],
    ['a ttlSeconds that is not a positive integer', async () => JSON.stringify({ csr: await csrFor(CRM_CONNECTOR), ttlSeconds: 0 }), 400, 'RENEW_ERR_MALFORMED', /ttlSeconds/],
    ['a body over 16 KiB', async () => JSON.stringify({ csr: 'x'.repeat(17 * 1024) }), 413, 'RENEW_ERR_TOO_LARGE', /larger than 16384 bytes/],
  ])('refuses %s: its HTTP status and code, audited', async (_label, body, status, code, message) => {
    t = await withRenewal();
    const creds = await t.creds(CRM_CONNECTOR);
    const answer = await post(t, creds, await body(t, creds));
    expect(answer).toEqual({ status, json: { code, error: expect.stringMatching(message) } });
    expect(t.audit.records.filter((r) => r.type === 'identity.renew')).toEqual([expect.objectContaining({ peer: CRM_CONNECTOR, issued: false, code, newCertSerial: null })]);
    expect(t.relay.metrics().renewals).toEqual({ [code]: 1 });
  });

  it('refuses a revoked identity (403 RENEW_ERR_REVOKED)', async () => {
    t = await withRenewal({ policy: { ...STANDARD_POLICY, revoked: { ids: [OUTSIDER] } } });
    const answer = await post(t, await t.creds(OUTSIDER), JSON.stringify({ csr: await csrFor(OUTSIDER) }));
    expect(answer).toEqual({ status: 403, json: { code: 'RENEW_ERR_REVOKED', error: 'this identity has been revoked' } });
    expect(t.audit.records.filter((r) => r.type === 'identity.renew')).toEqual([expect.objectContaining({ peer: OUTSIDER, code: 'RENEW_ERR_REVOKED' })]);
  });

  it('refuses a GET (405) and answers 404 RENEW_ERR_DISABLED on a relay without an issuer', async () => {
    t = await withRenewal();
    expect((await post(t, await t.creds(CRM_CONNECTOR), '', 'GET')).json.code).toBe('RENEW_ERR_METHOD');
    await t.close();
    t = await startTestRelay();
    const answer = await post(t, await t.creds(CRM_CONNECTOR), JSON.stringify({ csr: await csrFor(CRM_CONNECTOR) }));
    expect(answer.status).toBe(404);
    expect(answer.json.code).toBe('RENEW_ERR_DISABLED');
  });

  it(`renews one certificate at most ${MAX_RENEWALS_PER_CERTIFICATE} times (429 RENEW_ERR_TOO_MANY)`, async () => {
    t = await withRenewal();
    const creds = await t.creds(CRM_CONNECTOR);
    const statuses: number[] = [];
    for (let i = 0; i <= MAX_RENEWALS_PER_CERTIFICATE; i++) statuses.push((await post(t, creds, JSON.stringify({ csr: await csrFor(CRM_CONNECTOR) }))).status);
    expect(statuses).toEqual([...new Array<number>(MAX_RENEWALS_PER_CERTIFICATE).fill(200), 429]);
  });

  it('an expired certificate does not get past the TLS handshake (no HTTP answer; counted as a handshake failure)', async () => {
    t = await withRenewal();
    const expired = await t.creds(`${CRM_CONNECTOR}-old`, { expired: true });
    await expect(post(t, expired, JSON.stringify({ csr: await csrFor(CRM_CONNECTOR) }))).rejects.toThrow();
    expect(t.relay.metrics().tlsHandshakeFailures).toBe(1);
    expect(t.audit.records.filter((r) => r.type === 'identity.renew')).toEqual([]);
  });

  it('renewOverRelay reports a refusal as RenewalError with the relay code', async () => {
    t = await startTestRelay();
    const creds = await t.creds(CRM_CONNECTOR);
    const err = await renewOverRelay(t.relay.url, new RelayTls(identityOf(t, creds), { untrusted: (m) => new Error(m) })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RenewalError);
    expect(err).toMatchObject({ code: 'RENEW_ERR_DISABLED', status: 404 });
  });
});

async function rsaCsr(): Promise<string> {
  const { stdout } = await run('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=crm', '-addext', 'subjectAltName=URI:spiffe://example.org/connector/crm']);
  return stdout;
}

// Flip one bit of the last byte of the DER: inside the signature, so the structure still parses.
function tamper(pem: string): string {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(b64, 'base64');
  der[der.length - 1] = (der[der.length - 1] as number) ^ 1;
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
}
