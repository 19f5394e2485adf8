import { Agent as HttpsAgent } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { createTestCA } from '@switchboard/pki/testing';
import { AGENT_SUBPROTOCOL, LINK_SUBPROTOCOL } from '@switchboard/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, OUTSIDER, SUPPORT, TD } from '../helpers/ids.js';
import { connect, outcome, startTestRelay, type TestRelay } from '../helpers/relay.js';
import { request as httpRequest } from 'node:http';

let t: TestRelay;
beforeEach(async () => {
  t = await startTestRelay({ admin: { listen: '127.0.0.1:0' } });
});
afterEach(async () => {
  await t.close();
});

describe('TLS: a peer without a valid certificate never reaches HTTP', () => {
  async function expectHandshakeFailure(creds: Parameters<typeof connect>[2]): Promise<void> {
    const before = t.relay.metrics();
    const o = await outcome(connect(t, '/v1/agent/crm', creds, AGENT_SUBPROTOCOL));
    expect(o.kind).toBe('error');
    // The server side saw a failed handshake, and no upgrade was ever considered.
    await expect.poll(() => t.relay.metrics().tlsHandshakeFailures, { timeout: 3000 }).toBe(before.tlsHandshakeFailures + 1);
    const after = t.relay.metrics();
    expect(Object.values(after.upgradesRefused).reduce((a, b) => a + b, 0)).toBe(0);
    expect(after.sessionsOpenedTotal).toBe(0);
    expect(t.audit.records).toEqual([]);
  }

  it('no client certificate → handshake fails', async () => {
    await expectHandshakeFailure(undefined);
  });

  it('a certificate from a foreign CA (same trust domain name) → handshake fails', async () => {
    const foreign = await createTestCA({ trustDomain: 'example.org' });
    const svid = await foreign.issue(SUPPORT);
    await expectHandshakeFailure({ cert: svid.certificatesPem(), key: svid.privateKeyPem() });
  });

  it('an expired certificate → handshake fails', async () => {
    await expectHandshakeFailure(await t.creds(SUPPORT, { expired: true }));
  });

  it('a certificate that is not yet valid → handshake fails', async () => {
    await expectHandshakeFailure(await t.creds(SUPPORT, { notYetValid: true }));
  });
});

describe('upgrade authorization', () => {
  async function refused(path: string, id: string | undefined, protocol: string | string[] | undefined, creds?: Parameters<typeof connect>[2]) {
    const o = await outcome(connect(t, path, creds ?? (id ? await t.creds(id) : undefined), protocol));
    if (o.kind !== 'refused') throw new Error(`expected a refusal, got ${o.kind}`);
    return o;
  }

  it('a chain-valid certificate that breaks the SVID rules (no URI SAN) → 403', async () => {
    const o = await refused('/v1/agent/crm', undefined, AGENT_SUBPROTOCOL, await t.creds(SUPPORT, { uris: [] }));
    expect(o.status).toBe(403);
    expect(o.body).toBe('the client certificate is not a valid X509-SVID\n');
    expect(t.relay.metrics().upgradesRefused.invalid_svid).toBe(1);
    const rec = t.audit.records.find((r) => r.type === 'connection.refused');
    expect(rec).toMatchObject({ status: 403, peer: null, reason: expect.stringMatching(/PKI_ERR_SVID_NO_URI_SAN/) });
  });

  it('an agent certificate on /v1/connector → 403', async () => {
    const o = await refused('/v1/connector', SUPPORT, LINK_SUBPROTOCOL);
    expect(o.status).toBe(403);
    expect(o.body).toBe('this identity is not a connector of any server\n');
    expect(t.relay.metrics().upgradesRefused.not_a_connector).toBe(1);
  });

  it('an agent not allowed for the server → 403; an undeclared server looks the same', async () => {
    const forbidden = await refused('/v1/agent/crm', OUTSIDER, AGENT_SUBPROTOCOL);
    const undeclared = await refused('/v1/agent/no-such-server', SUPPORT, AGENT_SUBPROTOCOL);
    expect(forbidden.status).toBe(403);
    expect(undeclared).toEqual(forbidden);
    expect(forbidden.body).toBe('this identity may not use this server\n');
  });

  it('a connector certificate on an agent path → 403 (the role comes from the policy)', async () => {
    const o = await refused('/v1/agent/crm', CRM_CONNECTOR, AGENT_SUBPROTOCOL);
    expect(o.status).toBe(403);
  });

  it('allowed, but no connector online → 503', async () => {
    const o = await refused('/v1/agent/crm', SUPPORT, AGENT_SUBPROTOCOL);
    expect(o.status).toBe(503);
    expect(o.body).toBe('no connector serves this server right now\n');
    expect(t.relay.metrics().upgradesRefused.no_connector).toBe(1);
    expect(t.audit.records.filter((r) => r.type === 'connection.refused')).toEqual([
      expect.objectContaining({ peer: SUPPORT, status: 503, path: '/v1/agent/crm' }),
    ]);
  });

  it.each<[string, string | string[] | undefined]>([
    ['no subprotocol', undefined],
    ['the link subprotocol', LINK_SUBPROTOCOL],
    ['another subprotocol', 'mcp2'],
  ])('agent path with %s → 400', async (_label, protocol) => {
    const o = await refused('/v1/agent/crm', SUPPORT, protocol);
    expect(o.status).toBe(400);
    expect(o.body).toBe('the WebSocket subprotocol must be "mcp"\n');
  });

  it('connector path without its subprotocol → 400', async () => {
    const o = await refused('/v1/connector', CRM_CONNECTOR, AGENT_SUBPROTOCOL);
    expect(o.status).toBe(400);
  });

  it.each(['/v1/agent/', '/v1/agent/a%2Fb', '/v1/agent/crm/extra', '/v1/agent/a%20b'])('malformed server path %s → 400', async (path) => {
    const o = await refused(path, SUPPORT, AGENT_SUBPROTOCOL);
    expect(o.status).toBe(400);
  });

  it.each(['/', '/v1/servers', '/v2/agent/crm', '/v1/connectors'])('unknown path %s → 404', async (path) => {
    const o = await refused(path, SUPPORT, AGENT_SUBPROTOCOL);
    expect(o.status).toBe(404);
    expect(o.body).toBe('no such endpoint\n');
  });

  it('refusals are answered with Connection: close within a second', async () => {
    const ws = connect(t, '/v1/agent/crm', await t.creds(OUTSIDER), AGENT_SUBPROTOCOL);
    const started = Date.now();
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => resolve(res.headers));
      ws.once('error', reject);
    });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(headers.connection).toBe('close');
    ws.terminate();
  });

  it('an allowed agent with a connector online is upgraded with subprotocol mcp', async () => {
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    expect(agent.ws.protocol).toBe(AGENT_SUBPROTOCOL);
    const s = await h.session(1);
    expect(s.open).toEqual({ server: 'crm', agent: SUPPORT });
    agent.ws.close();
    h.close();
  });

  it('a resumed TLS session is authenticated too (intermediates are not resent on resumption)', async () => {
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const creds = await t.creds(SUPPORT);
    const agent = new HttpsAgent({ maxCachedSessions: 10, keepAlive: false });
    const reused: boolean[] = [];
    for (let i = 0; i < 2; i++) {
      const ws = connect(t, '/v1/agent/crm', creds, AGENT_SUBPROTOCOL, { agent });
      ws.once('upgrade', (res) => reused.push((res.socket as TLSSocket).isSessionReused()));
      const o = await outcome(ws);
      expect(o.kind).toBe('open');
      ws.close();
      await new Promise((r) => ws.once('close', r));
    }
    expect(reused).toEqual([false, true]);
    expect(t.relay.metrics().sessionsOpenedTotal).toBe(2);
    h.close();
  });
});

describe('admin listener', () => {
  it('serves /healthz, /readyz and /metrics on loopback', async () => {
    const base = t.relay.adminUrl as string;
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    await outcome(connect(t, '/v1/agent/crm', await t.creds(OUTSIDER), AGENT_SUBPROTOCOL));
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('switchboard_relay_sessions_open 0');
    expect(metrics).toContain('switchboard_relay_links_up 0');
    expect(metrics).toContain('switchboard_relay_upgrades_refused_total{reason="forbidden"} 1');
    expect(metrics).toContain('# TYPE switchboard_relay_messages_forwarded_total counter');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    // DNS rebinding: a page on attacker.example whose name now resolves to 127.0.0.1 sends its own
    // Host; a cross-site request carries its Origin. Neither reads the metrics.
    const port = new URL(base).port;
    expect(await getWith(`${base}/metrics`, { host: `attacker.example:${port}` })).toEqual({ status: 403, body: 'forbidden: unexpected Host header\n' });
    expect(await getWith(`${base}/metrics`, { host: `127.0.0.1:${port}`, origin: 'http://attacker.example' })).toEqual({ status: 403, body: 'forbidden: cross-origin request\n' });
    expect((await getWith(`${base}/metrics`, { host: `localhost:${port}` })).status).toBe(200);
  });

  it('is refused on a non-loopback address', async () => {
    const ca = await createTestCA();
    const { startRelay } = await import('../../src/relay.js');
    await expect(
      startRelay({
        listen: '127.0.0.1:0',
        identity: { svid: await ca.issue(`${TD}/relay/x`), bundle: ca.bundle },
        policy: { trustDomain: 'example.org', servers: {} },
        audit: { sink: t.audit },
        admin: { listen: '0.0.0.0:0' },
      }),
    ).rejects.toMatchObject({ code: 'RELAY_ERR_CONFIG', path: 'admin.listen' });
  });
});

/** getWith fetches `url` with the headers a browser on another site would send (fetch cannot set Host). */
function getWith(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
