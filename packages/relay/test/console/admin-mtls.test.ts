// The admin listener over mutual TLS (admin.mtls): HTTPS with the relay's SVID, a client X509-SVID
// required; viewers read, admins also approve (the approval audited under their SPIFFE ID); anyone
// else gets 403, and no certificate no connection. `switchboard status --identity` reads it.
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runStatus } from '../../src/cli/status-command.js';
import { loadRelayConfig } from '../../src/config/relay-config.js';
import { AgentClient } from '../helpers/agent-client.js';
import { CRM_TOOLS, HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, SUPPORT, TD } from '../helpers/ids.js';
import { startTestRelay, type Creds, type TestRelay } from '../helpers/relay.js';
import { writeFile } from 'node:fs/promises';

const VIEWER = `${TD}/ops/viewer`;
const ADMIN = `${TD}/ops/alice`;
const OUTSIDER = `${TD}/ops/mallory`;

let t: TestRelay | undefined;
let h: HarnessConnector | undefined;
let dir: string | undefined;
afterEach(async () => {
  h?.close();
  await t?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  t = h = dir = undefined;
});

function call(path: string, creds: Creds | undefined, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  const url = new URL(path, t?.relay.adminUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: init.method ?? 'GET',
        headers: init.headers ?? {},
        ca: t?.ca.bundlePem,
        ...(creds ? { cert: creds.cert, key: creds.key } : {}),
        // The relay's SVID names it by URI SAN only: the chain is checked, not a hostname.
        checkServerIdentity: () => undefined,
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

const POLICY = {
  trustDomain: 'example.org',
  servers: { crm: { connectors: [CRM_CONNECTOR] } },
  rules: [{ id: 'support', agents: [`${TD}/agent/support/*`], servers: ['crm'], tools: { allow: ['get_order'] } }],
};

async function start(): Promise<void> {
  t = await startTestRelay({ policy: POLICY, admin: { listen: '127.0.0.1:0', mtls: { viewers: [VIEWER], admins: [`${TD}/ops/alice`] } } });
}

describe('admin.mtls', () => {
  it('serves HTTPS to listed identities only: viewers read, an outsider gets 403, no certificate no connection', async () => {
    await start();
    expect(t?.relay.adminUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const viewer = await t!.creds(VIEWER);
    const inv = await call('/v1/inventory', viewer);
    expect(inv.status).toBe(200);
    expect(JSON.parse(inv.body).access).toEqual({ via: 'mtls', id: VIEWER, approve: 'no' });
    expect((await call('/metrics', viewer)).body).toContain('# TYPE switchboard_relay_tool_call_duration_seconds histogram');
    expect((await call('/console/', viewer)).status).toBe(200);
    // Any Host is fine (the certificate is the credential); another site's Origin is not.
    expect((await call('/v1/inventory', viewer, { headers: { host: 'admin.relay.example.org' } })).status).toBe(200);
    expect((await call('/v1/inventory', viewer, { headers: { origin: 'https://attacker.example' } })).status).toBe(403);
    const outsider = await call('/v1/inventory', await t!.creds(OUTSIDER));
    expect(outsider).toEqual({ status: 403, body: `forbidden: ${OUTSIDER} is not listed under admin.mtls.viewers or admin.mtls.admins\n` });
    await expect(call('/v1/inventory', undefined)).rejects.toThrow();
    // A certificate from another CA does not get through the handshake either.
    const { createTestCA } = await import('@switchboard/pki/testing');
    const other = await createTestCA({ trustDomain: 'example.org' });
    const foreign = await other.issue(ADMIN);
    await expect(call('/v1/inventory', { cert: foreign.certificatesPem(), key: foreign.privateKeyPem(), ca: t!.ca.bundlePem })).rejects.toThrow();
  });

  it('an admin approves a drifted tool with its certificate, audited under its SPIFFE ID; a viewer may not', async () => {
    await start();
    h = await HarnessConnector.connect(t!, CRM_CONNECTOR, ['crm']);
    const agent = await AgentClient.open(t!, SUPPORT, 'crm');
    await agent.call('tools/list');
    const original = (CRM_TOOLS[2] as { description: string }).description;
    (CRM_TOOLS[2] as { description: string }).description = 'an order (changed)';
    try {
      await agent.call('tools/list');
    } finally {
      (CRM_TOOLS[2] as { description: string }).description = original;
    }
    const body = JSON.stringify({ server: 'crm', tools: ['get_order'] });
    const viewer = await call('/v1/tools/approve', await t!.creds(VIEWER), { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    expect(viewer).toEqual({ status: 403, body: `${JSON.stringify({ error: `${VIEWER} may read but not approve: it is not listed under admin.mtls.admins` })}\n` });
    const admin = await t!.creds(ADMIN);
    expect(JSON.parse((await call('/v1/inventory', admin)).body).access).toEqual({ via: 'mtls', id: ADMIN, approve: 'identity' });
    const ok = await call('/v1/tools/approve', admin, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    expect(ok.status).toBe(200);
    expect(t!.audit.records.filter((r) => r.type === 'pin.approve')).toEqual([expect.objectContaining({ server: 'crm', name: 'get_order', approvedBy: ADMIN })]);
  });

  it('switchboard status --identity reads an https:// admin listener; without one it says what to give', async () => {
    await start();
    dir = await mkdtemp(join(tmpdir(), 'sb-admin-mtls-'));
    await t!.ca.writeIdentity(join(dir, 'viewer'), await t!.ca.issue(VIEWER));
    let out = '';
    let err = '';
    const io = { stdout: { write: (s: string) => ((out += s), true) }, stderr: { write: (s: string) => ((err += s), true) } };
    expect(await runStatus({ relay: t!.relay.adminUrl as string, identity: join(dir, 'viewer'), relayId: `${TD}/relay/main` }, io)).toBe(0);
    expect(out).toMatch(new RegExp(`^relay ${TD}/relay/main  up `));
    expect(await runStatus({ relay: t!.relay.adminUrl as string, identity: join(dir, 'viewer'), relayId: `${TD}/relay/other` }, io)).toBe(1);
    expect(err).toMatch(/RELAY_ERR_RUNTIME: status: cannot reach the relay's admin listener/);
    err = '';
    expect(await runStatus({ relay: t!.relay.adminUrl as string }, io)).toBe(2);
    expect(err).toBe('RELAY_ERR_USAGE: status: an https:// admin listener requires mutual TLS: give --identity <dir> (an SVID listed under admin.mtls.viewers or admins)\n');
  });

  it('relay.yaml: only with admin.mtls may admin.listen leave loopback; its entries must be SPIFFE IDs, and someone must be listed', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-admin-mtls-'));
    const base = 'listen: 0.0.0.0:8443\nidentity: ./ids/relay\npolicy: ./policy.yaml\naudit: { path: ./audit.log, signingKey: none }\n';
    const load = async (admin: string) => {
      const p = join(dir as string, 'relay.yaml');
      await writeFile(p, `${base}admin: ${admin}\n`);
      return loadRelayConfig(p);
    };
    await expect(load('{ listen: 0.0.0.0:9443 }')).rejects.toThrow(/admin\.listen: must be a loopback address .*; to expose the admin listener, set admin\.mtls/);
    expect((await load(`{ listen: 0.0.0.0:9443, mtls: { admins: [${ADMIN}], viewers: ["${TD}/monitoring/*"] } }`)).admin).toEqual({ listen: '0.0.0.0:9443', mtls: { admins: [ADMIN], viewers: [`${TD}/monitoring/*`] } });
    await expect(load('{ listen: 0.0.0.0:9443, mtls: { admins: [alice] } }')).rejects.toThrow(/admin\.mtls\.admins\[0\]: "alice" is not a SPIFFE ID or pattern/);
    await expect(load('{ listen: 0.0.0.0:9443, mtls: {} }')).rejects.toThrow(/admin\.mtls: lists no viewers and no admins/);
  });
});
