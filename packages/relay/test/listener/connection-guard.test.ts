import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { AGENT_SUBPROTOCOL } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRelayConfig } from '../../src/config/relay-config.js';
import { sourceOf } from '../../src/listener/connection-guard.js';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, SUPPORT } from '../helpers/ids.js';
import { connect, outcome, startTestRelay, type TestRelay } from '../helpers/relay.js';
import { within } from '../helpers/time.js';

let t: TestRelay | undefined;
const floods: Socket[] = [];
afterEach(async () => {
  for (const s of floods.splice(0)) s.destroy();
  await t?.close();
  t = undefined;
});

/** flood opens `count` TCP connections from `from` that never send a byte (a slowloris on TLS). */
async function flood(relay: TestRelay, from: string, count: number): Promise<Socket[]> {
  const opened = await Promise.all(
    Array.from({ length: count }, () =>
      within(
        new Promise<Socket>((resolve, reject) => {
          const s = tcpConnect({ host: '127.0.0.1', port: relay.relay.port, localAddress: from });
          s.on('error', () => undefined);
          s.once('connect', () => resolve(s));
          s.once('close', () => reject(new Error('closed before connecting')));
        }),
        5000,
        'a flood connection',
      ),
    ),
  );
  floods.push(...opened);
  return opened;
}

/** served opens a session as SUPPORT and lists the tools: the legitimate agent of each test. */
async function served(relay: TestRelay, localAddress?: string): Promise<number> {
  const ws = connect(relay, '/v1/agent/crm', await relay.creds(SUPPORT), AGENT_SUBPROTOCOL, localAddress ? { localAddress } : {});
  const o = await outcome(ws);
  if (o.kind !== 'open') throw new Error(`the legitimate agent was not served: ${JSON.stringify(o)}`);
  const agent = new AgentClient(o.ws);
  const list = await agent.call('tools/list');
  agent.ws.close();
  return (list.result as { tools: unknown[] }).tools.length;
}

describe('sourceOf: the key connections are counted under', () => {
  it.each([
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:abcd::1', '2001:db8:1:2::/64'],
    ['::1', '0:0:0:0::/64'],
    [undefined, '?'],
  ])('%s → %s', (address, key) => {
    expect(sourceOf(address)).toBe(key);
  });
});

describe('hostile load on the public listener', () => {
  it('500 connections from one source that never finish the handshake: all but 64 dropped at once, the agent is served', async () => {
    t = await startTestRelay({ limits: { handshakeTimeoutMs: 60_000 } });
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const sockets = await flood(t, '127.0.0.2', 500);
    await expect.poll(() => sockets.filter((s) => s.destroyed || s.readableEnded).length, { timeout: 5000 }).toBe(500 - 64);
    const m = t.relay.metrics();
    expect(m.connectionsDropped.source_handshakes).toBe(436);
    expect(m.connectionsDropped.handshake_evicted).toBe(0);
    expect(m.connections.inHandshake).toBe(64);
    // The 64 the source may keep are still waiting; the agent from another address goes through.
    expect(await served(t)).toBe(2);
    expect(t.relay.metrics().sessionsOpenedTotal).toBe(1);
    h.close();
  });

  it('a flood spread over 20 sources: the oldest handshakes give way to new connections, the agent is served', async () => {
    t = await startTestRelay({ limits: { handshakeTimeoutMs: 60_000 } });
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    for (let i = 0; i < 20; i++) await flood(t, `127.0.1.${i + 1}`, 30);
    await expect.poll(() => t?.relay.metrics().connectionsDropped.handshake_evicted, { timeout: 5000 }).toBe(600 - 256);
    expect(t.relay.metrics().connections.inHandshake).toBe(256);
    expect(await served(t)).toBe(2);
    // The first flood sockets were the ones pushed out; the newest are still held.
    expect(floods.slice(0, 300).every((s) => s.destroyed || s.readableEnded)).toBe(true);
    expect(floods.slice(-200).some((s) => s.destroyed || s.readableEnded)).toBe(false);
    h.close();
  });

  it('maxConnectionsPerSource and maxConnections close the connection past the cap before TLS', async () => {
    t = await startTestRelay({ limits: { maxConnectionsPerSource: 2, maxConnections: 4 } });
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const creds = await t.creds(SUPPORT);
    const open = async (from: string) => outcome(connect(t as TestRelay, '/v1/agent/crm', creds, AGENT_SUBPROTOCOL, { localAddress: from }));
    const a = [await open('127.0.2.1'), await open('127.0.2.1')];
    expect(a.map((o) => o.kind)).toEqual(['open', 'open']);
    expect((await open('127.0.2.1')).kind).toBe('error');
    expect(t.relay.metrics().connectionsDropped.source_connections).toBe(1);
    // The harness link (127.0.0.1) and two agents: one more fits in maxConnections, then none.
    expect((await open('127.0.2.2')).kind).toBe('open');
    expect((await open('127.0.2.3')).kind).toBe('error');
    expect(t.relay.metrics().connectionsDropped.max_connections).toBe(1);
    expect(t.relay.metrics().connections.open).toBe(4);
    h.close();
  });

  it('a connection that finishes TLS but sends no request is closed after upgradeTimeoutMs; sessions are not', async () => {
    t = await startTestRelay({ limits: { upgradeTimeoutMs: 300 } });
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const creds = await t.creds(SUPPORT);
    const idle = tlsConnect({ host: '127.0.0.1', port: t.relay.port, cert: creds.cert, key: creds.key, ca: creds.ca, checkServerIdentity: () => undefined });
    idle.on('error', () => undefined);
    await within(new Promise((r) => idle.once('secureConnect', r)), 5000, 'the idle TLS connection');
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    await within(new Promise((r) => idle.once('close', r)), 5000, 'the idle connection to be closed');
    expect(t.relay.metrics().connectionsDropped.upgrade_timeout).toBe(1);
    // The agent upgraded in time: its session outlives the timeout.
    await new Promise((r) => setTimeout(r, 400));
    expect((await agent.call('ping')).result).toEqual({});
    agent.ws.close();
    h.close();
  });

  it('the limits are relay.yaml keys with ranges; the gauges and drops are on /metrics', async () => {
    const cfg = parseRelayConfig(
      { listen: '127.0.0.1:0', identity: './id', policy: './p.yaml', audit: { path: './a.log', signingKey: 'none' }, limits: { maxHandshakesPerSource: 0, upgradeTimeoutMs: 2000 } },
      '/etc/sb',
    );
    expect(cfg.limits).toMatchObject({ maxHandshakesPerSource: 0, upgradeTimeoutMs: 2000, maxHandshakes: 256, maxConnectionsPerSource: 2048, maxConnections: 20_000, handshakeTimeoutMs: 5000 });
    expect(() => parseRelayConfig({ listen: '127.0.0.1:0', identity: './id', policy: './p.yaml', audit: { path: './a.log', signingKey: 'none' }, limits: { maxHandshakes: 0 } }, '/etc/sb')).toThrow(
      /limits\.maxHandshakes/,
    );
    t = await startTestRelay({ admin: { listen: '127.0.0.1:0' }, limits: { maxHandshakesPerSource: 1, handshakeTimeoutMs: 60_000 } });
    await flood(t, '127.0.3.1', 3);
    await expect.poll(() => t?.relay.metrics().connectionsDropped.source_handshakes, { timeout: 5000 }).toBe(2);
    const text = await (await fetch(`${t.relay.adminUrl}/metrics`)).text();
    expect(text).toContain('switchboard_relay_handshakes_in_progress{listener="main"} 1');
    expect(text).toContain('switchboard_relay_connections_open{listener="main"} 1');
    expect(text).toContain('switchboard_relay_connections_dropped_total{reason="source_handshakes"} 2');
  });
});
