// Identities from the SPIFFE Workload API: every party (relay, connector, SDK agent, `agent stdio`)
// takes its X.509-SVID from a Workload API server the test starts from workload.proto — what a SPIRE
// agent serves on its unix socket — and follows the rotations the stream delivers, mid-session,
// without dropping a call, a session or a link.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { AgentIdentity, connect } from '@switchboard/agent-sdk';
import { parseConnectorConfig, startConnector } from '@switchboard/connector';
import type { Identity } from '@switchboard/pki';
import { createTestCA, startWorkloadApiServer, type TestCA, type TestWorkloadApiServer } from '@switchboard/pki/testing';
import { MemoryAuditSink, startRelay } from '@switchboard/relay';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, EVERYTHING, TD, startRelayProcess } from './world.js';

const RELAY = `spiffe://${TD}/relay/main`;
const CONNECTOR = `spiffe://${TD}/connector/main`;
const AGENT = `spiffe://${TD}/agent/support`;
const STDIO_AGENT = `spiffe://${TD}/agent/desktop`;
const POLICY = {
  trustDomain: TD,
  servers: { everything: { connectors: [CONNECTOR] } },
  rules: [{ id: 'support', agents: [AGENT, STDIO_AGENT], servers: ['everything'], tools: { allow: ['echo'] } }],
};
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function workloadApi(dir: string, name: string, identity: Identity): Promise<TestWorkloadApiServer> {
  const server = await startWorkloadApiServer(join(dir, `${name}.sock`), [identity]);
  cleanups.push(() => server.close());
  return server;
}

/** relayCertSerial is the serial of the certificate the relay presents to a new TLS connection. */
function relayCertSerial(url: string, client: Identity): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: u.hostname,
      port: Number(u.port),
      key: client.svid.privateKeyPem(),
      cert: client.svid.certificatesPem(),
      ca: client.bundle.toPem(),
      checkServerIdentity: () => undefined,
      minVersion: 'TLSv1.3',
    });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate().serialNumber.toUpperCase());
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

const svidOf = async (ca: TestCA, id: string): Promise<Identity> => ({ svid: await ca.issue(id), bundle: ca.bundle });
const echo = async (c: { callTool(p: { name: string; arguments: Record<string, unknown> }): Promise<unknown> }, m: string): Promise<string | undefined> =>
  ((await c.callTool({ name: 'echo', arguments: { message: m } })) as { content: { text: string }[] }).content[0]?.text;

describe('the SPIFFE Workload API as the identity source, end to end', () => {
  it('relay, connector, SDK agent and `agent stdio` follow two rotations each with no dropped call, session or link', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-wl-e2e-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ca = await createTestCA({ trustDomain: TD });
    const apis = {
      relay: await workloadApi(dir, 'relay', await svidOf(ca, RELAY)),
      connector: await workloadApi(dir, 'connector', await svidOf(ca, CONNECTOR)),
      agent: await workloadApi(dir, 'agent', await svidOf(ca, AGENT)),
      stdio: await workloadApi(dir, 'stdio', await svidOf(ca, STDIO_AGENT)),
    };
    const audit = new MemoryAuditSink();
    const relay = await startRelay({ listen: '127.0.0.1:0', identity: { workloadApi: { endpoint: apis.relay.endpoint } }, policy: POLICY, audit: { sink: audit } });
    cleanups.push(() => relay.close({ drainTimeoutMs: 0 }));
    const config = parseConnectorConfig({ relays: [relay.url], identity: { workloadApi: { endpoint: apis.connector.endpoint } }, servers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } } });
    const connector = await startConnector(config, { drainTimeoutMs: 0 });
    cleanups.push(() => connector.close());
    await connector.ready();
    const linkId = connector.links()[0]?.linkId;

    const identity = await AgentIdentity.fromWorkloadApi({ endpoint: apis.agent.endpoint });
    cleanups.push(() => identity.close());
    expect(identity.fromWorkloadApiSource).toBe(true);
    expect(() => identity.startRenewal(relay.url)).toThrow(/Workload API rotates this identity/);
    const sdk = await connect({ relay: relay.url, server: 'everything', identity });
    cleanups.push(() => sdk.close());
    const stdio = new Client({ name: 'desktop', version: '1.0.0' });
    await stdio.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'agent', 'stdio', '--relay', relay.url, '--server', 'everything', '--workload-api', apis.stdio.endpoint], stderr: 'pipe' }));
    cleanups.push(() => stdio.close());

    // Calls run throughout on both agents, while each party's Workload API rotates it twice.
    let calls = 0;
    let failures = 0;
    let running = true;
    const traffic = (async () => {
      while (running && calls < 5000) {
        const n = calls++;
        const [a, b] = await Promise.all([echo(sdk, `a${n}`), echo(stdio, `s${n}`)]).catch(() => [undefined, undefined]);
        if (a !== `Echo: a${n}` || b !== `Echo: s${n}`) failures++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const relayServesSerials: string[] = [];
    const probe = await svidOf(ca, AGENT);
    for (let round = 1; round <= 2; round++) {
      const before = relay.metrics().reauths.accepted;
      const next = {
        connector: await svidOf(ca, CONNECTOR),
        agent: await svidOf(ca, AGENT),
        stdio: await svidOf(ca, STDIO_AGENT),
        relay: await svidOf(ca, RELAY),
      };
      apis.connector.rotate(next.connector);
      await until(`connector rotation ${round}`, () => relay.metrics().reauths.accepted === before + 1);
      apis.agent.rotate(next.agent);
      await until(`SDK agent rotation ${round}`, () => relay.metrics().reauths.accepted === before + 2);
      apis.stdio.rotate(next.stdio);
      await until(`agent stdio rotation ${round}`, () => relay.metrics().reauths.accepted === before + 3);
      apis.relay.rotate(next.relay);
      const want = next.relay.svid.leaf.serialNumber.toUpperCase();
      const deadline = Date.now() + 5000;
      let served = await relayCertSerial(relay.url, probe);
      while (served !== want && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        served = await relayCertSerial(relay.url, probe);
      }
      relayServesSerials.push(served);
      expect(served).toBe(want);
      const callsNow = calls;
      await until(`calls after round ${round}`, () => calls >= callsNow + 5);
    }
    running = false;
    await traffic;

    expect(failures).toBe(0);
    expect(calls).toBeGreaterThan(10);
    expect(relay.metrics().reauths).toEqual({ accepted: 6, refused: 0 });
    const reauths = audit.records.filter((r) => r.type === 'identity.reauth');
    expect(reauths.map((r) => r.type === 'identity.reauth' && r.peer).sort()).toEqual([CONNECTOR, CONNECTOR, STDIO_AGENT, STDIO_AGENT, AGENT, AGENT].sort());
    expect(reauths.every((r) => r.type === 'identity.reauth' && r.accepted)).toBe(true);
    // Nothing closed: the link of the start, the sessions of the start.
    expect(audit.records.filter((r) => r.type === 'link.down' || r.type === 'session.close')).toEqual([]);
    expect(connector.links()).toEqual([expect.objectContaining({ state: 'up', linkId, reconnects: 0 })]);
    expect(connector.counters().renewals).toBe(2);
    expect(identity.identity.svid.leaf.serialNumber).not.toBe(probe.svid.leaf.serialNumber);
    expect(new Set(relayServesSerials).size).toBe(2);
    // Every Workload API call carried the workload.spiffe.io header.
    for (const api of Object.values(apis)) expect(api.refusedNoHeader).toBe(0);
    // A session opened now dials with the newest identities on both ends.
    const fresh = await connect({ relay: relay.url, server: 'everything', identity });
    cleanups.push(() => fresh.close());
    expect(await echo(fresh, 'fresh')).toBe('Echo: fresh');
  });

  it('`switchboard relay` with identity: { workloadApi } in relay.yaml serves with the SVID the stream gives, and rotates it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-wl-relay-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ca = await createTestCA({ trustDomain: TD });
    const first = await svidOf(ca, RELAY);
    const api = await workloadApi(dir, 'relay', first);
    await writeFile(join(dir, 'policy.yaml'), JSON.stringify(POLICY));
    await writeFile(join(dir, 'relay.yaml'), `listen: 127.0.0.1:0\nidentity: { workloadApi: { endpoint: "${api.endpoint}" } }\npolicy: ./policy.yaml\naudit: { path: ./audit.log, signingKey: none }\n`);
    const relay = await startRelayProcess(join(dir, 'relay.yaml'));
    cleanups.push(async () => {
      relay.child.kill('SIGKILL');
      await relay.exited;
    });
    const probe = await svidOf(ca, AGENT);
    expect(await relayCertSerial(relay.url, probe)).toBe(first.svid.leaf.serialNumber.toUpperCase());
    const connectorIds = join(dir, 'connector');
    await ca.writeIdentity(connectorIds, await ca.issue(CONNECTOR));
    const connector = await startConnector(parseConnectorConfig({ relays: [relay.url], identity: connectorIds, servers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } } }), { drainTimeoutMs: 0, renew: false });
    cleanups.push(() => connector.close());
    await connector.ready();
    const agent = await connect({ relay: relay.url, server: 'everything', identity: probe });
    cleanups.push(() => agent.close());
    expect(await echo(agent, 'before')).toBe('Echo: before');
    const next = await svidOf(ca, RELAY);
    api.rotate(next);
    const want = next.svid.leaf.serialNumber.toUpperCase();
    const deadline = Date.now() + 5000;
    let served = await relayCertSerial(relay.url, probe);
    while (served !== want && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      served = await relayCertSerial(relay.url, probe);
    }
    expect(served).toBe(want);
    // The session of the start still answers; a new one dials the rotated relay.
    expect(await echo(agent, 'after')).toBe('Echo: after');
    const again = await connect({ relay: relay.url, server: 'everything', identity: probe });
    cleanups.push(() => again.close());
    expect(await echo(again, 'new')).toBe('Echo: new');
  });
});
