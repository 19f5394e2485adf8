// Identities that renew themselves: a real relay holding an issuer, a real connector on a 6-second
// SVID in front of a real MCP server, the SDK agent calling throughout. The connector renews over
// the relay at half its lifetime, writes its files, and moves its live link to each new
// certificate (REAUTH), so nothing is dropped; a connector that does not renew is closed at expiry.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { AgentIdentity, connect, startHttpBridge } from '@switchboard/agent-sdk';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { ISSUER_FILES, TrustBundle, issueEnrollmentToken, loadIdentityFiles, writeIdentityFiles } from '@switchboard/pki';
import { createTestCA, type TestCA } from '@switchboard/pki/testing';
import { MemoryAuditSink, startRelay } from '@switchboard/relay';
import { parseConnectorConfig, startConnector } from '@switchboard/connector';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, EVERYTHING, TD } from './world.js';

const CONNECTOR = `spiffe://${TD}/connector/main`;
const AGENT = `spiffe://${TD}/agent/support`;
const POLICY = {
  trustDomain: TD,
  servers: { everything: { connectors: [CONNECTOR] } },
  rules: [{ id: 'support', agents: [AGENT], servers: ['everything'], tools: { allow: ['echo'] } }],
};
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function setup(connectorTtl: number, renew: boolean, agentTtl?: number) {
  const dir = await mkdtemp(join(tmpdir(), 'sb-renew-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const ca: TestCA = await createTestCA({ trustDomain: TD });
  const audit = new MemoryAuditSink();
  const relay = await startRelay({
    listen: '127.0.0.1:0',
    identity: { svid: await ca.issue(`spiffe://${TD}/relay/main`), bundle: ca.bundle },
    policy: POLICY,
    audit: { sink: audit },
    renewal: { issuer: ca.ca.issuer(), ttlSeconds: agentTtl ?? connectorTtl },
  });
  cleanups.push(() => relay.close({ drainTimeoutMs: 0 }));
  const ids = join(dir, 'connector');
  await ca.writeIdentity(ids, await ca.issue(CONNECTOR, { ttlSeconds: connectorTtl }));
  const config = parseConnectorConfig({ relays: [relay.url], identity: ids, servers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } } });
  const connector = await startConnector(config, { drainTimeoutMs: 0, renew });
  cleanups.push(() => connector.close());
  await connector.ready();
  const agentIds = join(dir, 'agent');
  await ca.writeIdentity(agentIds, await ca.issue(AGENT, agentTtl === undefined ? {} : { ttlSeconds: agentTtl }));
  const agent = await connect({ relay: relay.url, server: 'everything', identity: { svid: await ca.issue(AGENT), bundle: ca.bundle } });
  cleanups.push(() => agent.close());
  return { relay, connector, agent, audit, ids, agentIds };
}

describe('identity renewal over the relay, end to end', () => {
  it('a connector on a 6 s SVID renews three times with no dropped call, link or session', async () => {
    const { relay, connector, agent, audit, ids } = await setup(6, true);
    const firstSerial = (await loadIdentityFiles(ids)).svid.leaf.serialNumber;
    const linkId = connector.links()[0]?.linkId;
    let calls = 0;
    const deadline = Date.now() + 20_000;
    while ((connector.renewal()?.renewals ?? 0) < 3 && Date.now() < deadline && calls < 2000) {
      const r = (await agent.callTool({ name: 'echo', arguments: { message: `m${calls}` } })) as { content: { text: string }[] };
      expect(r.content[0]?.text).toBe(`Echo: m${calls}`);
      calls++;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(connector.renewal()?.renewals).toBeGreaterThanOrEqual(3);
    expect(connector.renewal()?.failures).toBe(0);
    // The link is the one of the start: never closed, moved to each new certificate in place.
    expect(connector.links()).toEqual([expect.objectContaining({ state: 'up', linkId, reconnects: 0 })]);
    expect(relay.metrics().reauths).toEqual({ accepted: connector.renewal()?.renewals, refused: 0 });
    expect(relay.metrics().expiryCloses).toBe(0);
    expect(audit.records.filter((r) => r.type === 'link.down' || r.type === 'session.close')).toEqual([]);
    const issued = audit.records.filter((r) => r.type === 'identity.renew');
    expect(issued.length).toBe(connector.renewal()?.renewals);
    expect(issued.every((r) => r.type === 'identity.renew' && r.issued && r.peer === CONNECTOR)).toBe(true);
    // The files on disk hold the newest SVID, for the next process start.
    const onDisk = await loadIdentityFiles(ids);
    expect(onDisk.svid.leaf.serialNumber).not.toBe(firstSerial);
    expect(issued.at(-1)).toMatchObject({ newCertSerial: onDisk.svid.leaf.serialNumber });
    // The session the agent opened at the start still answers.
    expect(((await agent.callTool({ name: 'echo', arguments: { message: 'last' } })) as { content: { text: string }[] }).content[0]?.text).toBe('Echo: last');
  });

  it('a connector that does not renew is closed at expiry with 4402, and its session ends', async () => {
    const { relay, agent, audit } = await setup(3, false);
    const deadline = Date.now() + 8000;
    while (relay.metrics().expiryCloses === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    expect(relay.metrics().expiryCloses).toBe(1);
    expect(audit.records.filter((r) => r.type === 'link.down')).toEqual([expect.objectContaining({ connector: CONNECTOR, code: 4402 })]);
    // Closed for the connector's sake (its certificate), not lost: 4503, which the agent does not try to resume.
    expect(audit.records.filter((r) => r.type === 'session.close')).toEqual([expect.objectContaining({ agent: AGENT, code: 4503 })]);
    await expect(agent.callTool({ name: 'echo', arguments: { message: 'x' } })).rejects.toThrow();
  });

  it('an SDK agent on a 6 s SVID renews three times and keeps its session', async () => {
    const { relay, audit, agentIds } = await setup(3600, false, 6);
    const identity = await AgentIdentity.fromDirectory(agentIds);
    const renewer = identity.startRenewal(relay.url);
    cleanups.push(() => identity.stopRenewal());
    const client = await connect({ relay: relay.url, server: 'everything', identity });
    cleanups.push(() => client.close());
    let calls = 0;
    const deadline = Date.now() + 20_000;
    while (renewer.status().renewals < 3 && Date.now() < deadline && calls < 2000) {
      const r = (await client.callTool({ name: 'echo', arguments: { message: `a${calls}` } })) as { content: { text: string }[] };
      expect(r.content[0]?.text).toBe(`Echo: a${calls}`);
      calls++;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(renewer.status()).toMatchObject({ renewals: 3, failures: 0 });
    // Each renewal moved the live session (the same one) to the new certificate.
    await until(() => relay.metrics().reauths.accepted === 3);
    const reauths = audit.records.filter((r) => r.type === 'identity.reauth');
    expect(reauths).toHaveLength(3);
    expect(new Set(reauths.map((r) => r.type === 'identity.reauth' && r.on))).toEqual(new Set([expect.stringMatching(/^session:/)]));
    expect(audit.records.filter((r) => r.type === 'session.close' && r.agent === AGENT)).toEqual([]);
    expect((await loadIdentityFiles(agentIds)).svid.leaf.serialNumber).toBe(identity.identity.svid.leaf.serialNumber);
  });

  it('`agent http` on a 6 s SVID renews three times: its MCP session and the relay session under it live on', async () => {
    const { relay, audit, agentIds } = await setup(3600, false, 6);
    const bridge = await startHttpBridge({ listen: '127.0.0.1:0', relay: relay.url, server: 'everything', identity: agentIds });
    cleanups.push(() => bridge.close());
    const c = new Client({ name: 'cursor', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(bridge.url));
    await c.connect(transport);
    cleanups.push(() => c.close());
    const sessionId = transport.sessionId;
    let calls = 0;
    const deadline = Date.now() + 20_000;
    while (relay.metrics().reauths.accepted < 3 && Date.now() < deadline && calls < 2000) {
      const r = (await c.callTool({ name: 'echo', arguments: { message: `h${calls}` } })) as { content: { text: string }[] };
      expect(r.content[0]?.text).toBe(`Echo: h${calls}`);
      calls++;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(relay.metrics().reauths).toEqual({ accepted: 3, refused: 0 });
    expect(audit.records.filter((r) => r.type === 'identity.renew' && r.peer === AGENT && r.issued)).toHaveLength(3);
    expect(audit.records.filter((r) => r.type === 'session.close' && r.agent === AGENT)).toEqual([]);
    expect(transport.sessionId).toBe(sessionId);
    expect(bridge.sessions()).toBe(1);
    // A new MCP session after the renewals dials with the newest SVID.
    const d = new Client({ name: 'cursor-2', version: '1.0.0' });
    await d.connect(new StreamableHTTPClientTransport(new URL(bridge.url)));
    cleanups.push(() => d.close());
    expect(((await d.callTool({ name: 'echo', arguments: { message: 'new' } })) as { content: { text: string }[] }).content[0]?.text).toBe('Echo: new');
  });

  it('`switchboard agent stdio` on a 6 s SVID renews by itself: the MCP client above it sees nothing', async () => {
    const { relay, audit, agentIds } = await setup(3600, false, 6);
    const c = new Client({ name: 'stdio-client', version: '1.0.0' });
    await c.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'agent', 'stdio', '--relay', relay.url, '--server', 'everything', '--identity', agentIds], stderr: 'pipe' }));
    cleanups.push(() => c.close());
    let calls = 0;
    const deadline = Date.now() + 20_000;
    while (relay.metrics().reauths.accepted < 3 && Date.now() < deadline && calls < 2000) {
      const r = (await c.callTool({ name: 'echo', arguments: { message: `s${calls}` } })) as { content: { text: string }[] };
      expect(r.content[0]?.text).toBe(`Echo: s${calls}`);
      calls++;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(relay.metrics().reauths).toEqual({ accepted: 3, refused: 0 });
    expect(relay.metrics().expiryCloses).toBe(0);
    expect(audit.records.filter((r) => r.type === 'identity.renew' && r.peer === AGENT && r.issued)).toHaveLength(3);
    expect(audit.records.filter((r) => r.type === 'session.close' && r.agent === AGENT)).toEqual([]);
  });
});

describe("the relay's own certificate on a live link", () => {
  it('the relay renews its own 4 s SVID three times while calls run: links are replaced as each relay certificate expires, no session drops', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-relay-expiry-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ca = await createTestCA({ trustDomain: TD });
    const relayIds = join(dir, 'relay');
    const first = await ca.issue(`spiffe://${TD}/relay/main`, { ttlSeconds: 4 });
    await ca.writeIdentity(relayIds, first);
    const audit = new MemoryAuditSink();
    const relay = await startRelay({ listen: '127.0.0.1:0', identity: relayIds, policy: POLICY, audit: { sink: audit }, renewal: { issuer: ca.ca.issuer(), ttlSeconds: 4 } });
    cleanups.push(() => relay.close({ drainTimeoutMs: 0 }));
    const config = parseConnectorConfig({ relays: [relay.url], identity: { svid: await ca.issue(CONNECTOR), bundle: ca.bundle }, servers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } } });
    const connector = await startConnector(config, { drainTimeoutMs: 0, renew: false });
    cleanups.push(() => connector.close());
    await connector.ready();
    const firstLink = connector.links()[0]?.linkId;
    const agent = await connect({ relay: relay.url, server: 'everything', identity: { svid: await ca.issue(AGENT), bundle: ca.bundle } });
    cleanups.push(() => agent.close());
    let calls = 0;
    const deadline = Date.now() + 20_000;
    while (((relay.ownRenewer?.status().renewals ?? 0) < 3 || connector.counters().relayCertExpiries < 2) && Date.now() < deadline && calls < 2000) {
      const r = (await agent.callTool({ name: 'echo', arguments: { message: `r${calls}` } })) as { content: { text: string }[] };
      expect(r.content[0]?.text).toBe(`Echo: r${calls}`);
      calls++;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(relay.ownRenewer?.status()).toMatchObject({ failures: 0 });
    expect(relay.ownRenewer?.status().renewals).toBeGreaterThanOrEqual(3);
    expect(connector.counters().relayCertExpiries).toBeGreaterThanOrEqual(2);
    await until(() => connector.links()[0]?.state === 'up' && connector.links()[0]?.linkId !== firstLink, 5000);
    // The session of the start lives on, on the link it was opened on; a new one goes to the newest link.
    const fresh = await connect({ relay: relay.url, server: 'everything', identity: { svid: await ca.issue(AGENT), bundle: ca.bundle } });
    cleanups.push(() => fresh.close());
    expect(((await fresh.callTool({ name: 'echo', arguments: { message: 'new' } })) as { content: { text: string }[] }).content[0]?.text).toBe('Echo: new');
    expect(audit.records.filter((r) => r.type === 'session.close')).toEqual([]);
    // The first link closes once its last session ends.
    await agent.close();
    await until(() => audit.records.some((r) => r.type === 'link.down' && r.linkId === firstLink), 5000);
    expect(audit.records.filter((r) => r.type === 'session.close')).toEqual([expect.objectContaining({ agent: AGENT, code: 1000 })]);
  });
});

describe('a new connector host from a token', () => {
  it('enrolls at its first start (no identity files, no CA key) and serves; a restart keeps its identity', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-enroll-e2e-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ca = await createTestCA({ trustDomain: TD });
    const relay = await startRelay({
      listen: '127.0.0.1:0',
      identity: { svid: await ca.issue(`spiffe://${TD}/relay/main`), bundle: ca.bundle },
      policy: POLICY,
      audit: { sink: new MemoryAuditSink() },
      renewal: { issuer: ca.ca.issuer(), ttlSeconds: 3600 },
      enrollment: { listen: '127.0.0.1:0', publicKey: ca.ca.enrollmentSigner().publicKey, usedTokens: join(dir, 'used.jsonl') },
    });
    cleanups.push(() => relay.close({ drainTimeoutMs: 0 }));
    await writeFile(join(dir, 'crm.token'), `${await issueEnrollmentToken(ca.ca, CONNECTOR)}\n`);
    await writeFile(join(dir, 'bundle.pem'), ca.bundlePem);
    const yaml = { relays: [relay.url], identity: './ids/connector', enroll: { url: relay.enrollUrl, token: './crm.token', bundle: './bundle.pem' }, servers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } } };
    const first = await startConnector(parseConnectorConfig(yaml, { baseDir: dir }), { drainTimeoutMs: 0 });
    await first.ready();
    const enrolled = await loadIdentityFiles(join(dir, 'ids/connector'));
    expect(enrolled.svid.id.toString()).toBe(CONNECTOR);
    const agent = await connect({ relay: relay.url, server: 'everything', identity: { svid: await ca.issue(AGENT), bundle: ca.bundle } });
    expect(((await agent.callTool({ name: 'echo', arguments: { message: 'hi' } })) as { content: { text: string }[] }).content[0]?.text).toBe('Echo: hi');
    await agent.close();
    await first.close();
    // The token is spent; the second start uses the files the first one wrote.
    const second = await startConnector(parseConnectorConfig(yaml, { baseDir: dir }), { drainTimeoutMs: 0 });
    cleanups.push(() => second.close());
    await second.ready();
    expect((await loadIdentityFiles(join(dir, 'ids/connector'))).svid.leaf.serialNumber).toBe(enrolled.svid.leaf.serialNumber);
    expect(relay.metrics().enrollments).toEqual({ issued: 1 });

    // The agent bridges start from a token too: `agent stdio --enroll-token …` (a real process) and
    // the HTTP bridge, each into an empty identity directory of its own.
    await writeFile(join(dir, 'stdio.token'), `${await issueEnrollmentToken(ca.ca, AGENT)}\n`);
    const stdio = new Client({ name: 'desktop', version: '1.0.0' });
    const stdioIds = join(dir, 'ids/stdio');
    await stdio.connect(new StdioClientTransport({
      command: process.execPath,
      args: [CLI, 'agent', 'stdio', '--relay', relay.url, '--server', 'everything', '--identity', stdioIds, '--enroll-token', join(dir, 'stdio.token'), '--enroll-url', relay.enrollUrl as string, '--enroll-bundle', join(dir, 'bundle.pem')],
      stderr: 'pipe',
    }));
    cleanups.push(() => stdio.close());
    expect(((await stdio.callTool({ name: 'echo', arguments: { message: 'stdio' } })) as { content: { text: string }[] }).content[0]?.text).toBe('Echo: stdio');
    expect((await loadIdentityFiles(stdioIds)).svid.id.toString()).toBe(AGENT);
    await writeFile(join(dir, 'http.token'), `${await issueEnrollmentToken(ca.ca, AGENT)}\n`);
    const httpIds = join(dir, 'ids/http');
    const bridge = await startHttpBridge({ listen: '127.0.0.1:0', relay: relay.url, server: 'everything', identity: httpIds, enroll: { url: relay.enrollUrl as string, token: join(dir, 'http.token'), bundle: join(dir, 'bundle.pem') } });
    cleanups.push(() => bridge.close());
    const http = new Client({ name: 'cursor', version: '1.0.0' });
    await http.connect(new StreamableHTTPClientTransport(new URL(bridge.url)));
    cleanups.push(() => http.close());
    expect(((await http.callTool({ name: 'echo', arguments: { message: 'http' } })) as { content: { text: string }[] }).content[0]?.text).toBe('Echo: http');
    expect((await loadIdentityFiles(httpIds)).svid.id.toString()).toBe(AGENT);
    expect(relay.metrics().enrollments).toEqual({ issued: 3 });
    // A spent token cannot enroll a second empty directory: refused, and nothing is written.
    const again = await startHttpBridge({ listen: '127.0.0.1:0', relay: relay.url, server: 'everything', identity: join(dir, 'ids/again'), enroll: { url: relay.enrollUrl as string, token: join(dir, 'http.token'), bundle: join(dir, 'bundle.pem') } }).then(
      () => 'started',
      (err: Error & { code?: string }) => `${err.code}: ${err.message}`,
    );
    expect(again).toMatch(/^AGENT_ERR_IDENTITY_INVALID: agent: enroll: the relay refused \(HTTP 409 ENROLL_ERR_TOKEN_USED\)/);
    expect(await readdir(join(dir, 'ids/again')).catch(() => [])).toEqual([]);
  });
});

describe('root rotation through renewal', () => {
  it('a new root reaches the connector by renewal, then the relay swaps its issuer in place (no restart) and moves to the new root; no session drops', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-rotate-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const oldCa = await createTestCA({ trustDomain: TD });
    const newCa = await createTestCA({ trustDomain: TD });
    const both = TrustBundle.fromPem(TD, oldCa.bundlePem + newCa.bundlePem);
    // The issuer directory holds the old intermediate and the overlap bundle (old and new roots).
    const issuerFiles = async (ca: TestCA, into: string): Promise<void> => {
      const full = await mkdtemp(join(dir, 'ca-'));
      await ca.ca.save(full);
      await writeFile(join(full, ISSUER_FILES.bundle), both.toPem());
      for (const name of Object.values(ISSUER_FILES)) await writeFile(join(into, `.${name}.tmp`), await readFile(join(full, name)));
      for (const name of Object.values(ISSUER_FILES)) await rename(join(into, `.${name}.tmp`), join(into, name));
    };
    const issuerDir = join(dir, 'issuer');
    await mkdir(issuerDir);
    await issuerFiles(oldCa, issuerDir);
    const relayIds = join(dir, 'relay');
    await writeIdentityFiles(relayIds, { svid: await oldCa.issue(`spiffe://${TD}/relay/main`, { ttlSeconds: 3600 }), bundle: both });
    const audit = new MemoryAuditSink();
    const relay = await startRelay({ listen: '127.0.0.1:0', identity: relayIds, policy: POLICY, audit: { sink: audit }, renewal: { issuer: issuerDir, ttlSeconds: 6 } });
    cleanups.push(() => relay.close({ drainTimeoutMs: 0 }));
    const ids = join(dir, 'connector');
    // The connector starts knowing only the old root.
    await oldCa.writeIdentity(ids, await oldCa.issue(CONNECTOR, { ttlSeconds: 6 }));
    const connector = await startConnector(parseConnectorConfig({ relays: [relay.url], identity: ids, servers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } } }), { drainTimeoutMs: 0 });
    cleanups.push(() => connector.close());
    await connector.ready();
    const agent = await connect({ relay: relay.url, server: 'everything', identity: { svid: await oldCa.issue(AGENT), bundle: both } });
    cleanups.push(() => agent.close());
    await until(() => (connector.renewal()?.renewals ?? 0) >= 1, 8000);
    expect((await loadIdentityFiles(ids)).bundle.x509Authorities.map((c) => c.fingerprint256).sort()).toEqual(both.x509Authorities.map((c) => c.fingerprint256).sort());
    // The operator puts the new intermediate into the issuer directory; the relay picks it up by itself.
    await issuerFiles(newCa, issuerDir);
    await until(() => {
      try {
        return readFileSync(join(relayIds, 'svid.pem'), 'utf8').includes(newCa.ca.intermediateCertificate.toString().trim());
      } catch {
        return false;
      }
    }, 8000);
    // The connector's next renewal comes from the new intermediate.
    const before = connector.renewal()?.renewals ?? 0;
    await until(() => (connector.renewal()?.renewals ?? 0) > before, 8000);
    expect((await loadIdentityFiles(ids)).svid.certificates[1]?.fingerprint256).toBe(newCa.ca.intermediateCertificate.fingerprint256);
    // An agent of the new root reaches the server; the session of the start still answers.
    const fresh = await connect({ relay: relay.url, server: 'everything', identity: { svid: await newCa.issue(AGENT), bundle: both } });
    cleanups.push(() => fresh.close());
    expect(((await fresh.callTool({ name: 'echo', arguments: { message: 'rotated' } })) as { content: { text: string }[] }).content[0]?.text).toBe('Echo: rotated');
    expect(((await agent.callTool({ name: 'echo', arguments: { message: 'still' } })) as { content: { text: string }[] }).content[0]?.text).toBe('Echo: still');
    expect(audit.records.filter((r) => r.type === 'session.close')).toEqual([]);
    expect(relay.metrics().expiryCloses).toBe(0);
  });
});


async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok() && Date.now() < end) await new Promise((res) => setTimeout(res, 50));
  expect(ok()).toBe(true);
}
