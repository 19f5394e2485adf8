import { AGENT_SUBPROTOCOL, FrameType, encodeControl, encodeData, encodeWindow } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, RELAY_ID, SUPPORT, SUPPORT_2, TD } from '../helpers/ids.js';
import { connect, outcome, startTestRelay, type TestRelay } from '../helpers/relay.js';
import { sleep, within } from '../helpers/time.js';

let t: TestRelay;
const harnesses: HarnessConnector[] = [];

async function link(id = CRM_CONNECTOR, servers = ['crm']): Promise<HarnessConnector> {
  const h = await HarnessConnector.connect(t, id, servers);
  harnesses.push(h);
  return h;
}

afterEach(async () => {
  for (const h of harnesses.splice(0)) h.ws.terminate();
  await t?.close();
});

describe('HELLO / WELCOME', () => {
  it('accepts only the servers the policy lists this connector for', async () => {
    t = await startTestRelay();
    const h = await link(CRM_CONNECTOR, ['crm', 'tickets', 'ghost', 'bad/name', 'crm']);
    expect(h.welcome).toEqual({
      version: 1,
      linkId: expect.stringMatching(/^[0-9a-f]{16}$/),
      relay: RELAY_ID,
      accepted: ['crm'],
      rejected: [
        { server: 'tickets', reason: 'this connector is not listed under servers.tickets.connectors' },
        { server: 'ghost', reason: 'this connector is not listed under servers.ghost.connectors' },
        { server: 'bad/name', reason: 'not a valid server name' },
      ],
      window: 256 * 1024,
      reauth: true,
      events: true,
    });
    expect(t.relay.servers()).toEqual(['crm']);
    // The support agents may use tickets, but this connector could not register it.
    const o = await outcome(connect(t, '/v1/agent/tickets', await t.creds(SUPPORT), AGENT_SUBPROTOCOL));
    expect(o).toMatchObject({ kind: 'refused', status: 503 });
    expect((await outcome(connect(t, '/v1/agent/crm', await t.creds(SUPPORT), AGENT_SUBPROTOCOL))).kind).toBe('open');
    expect(t.audit.records.find((r) => r.type === 'link.up')).toMatchObject({ connector: CRM_CONNECTOR, servers: ['crm'], rejectedServers: ['tickets', 'ghost', 'bad/name'] });
  });

  it('answers with the highest version both speak', async () => {
    t = await startTestRelay();
    const h = await HarnessConnector.dial(t, CRM_CONNECTOR);
    harnesses.push(h);
    h.hello(['crm'], 7);
    expect((await h.until(() => h.welcome, 'WELCOME')).version).toBe(1);
  });

  it('closes the link with 4403 after WELCOME when nothing is accepted', async () => {
    t = await startTestRelay();
    const h = await HarnessConnector.dial(t, CRM_CONNECTOR);
    harnesses.push(h);
    h.hello(['tickets']);
    expect(await within(h.closed, 3000, 'close')).toEqual({ code: 4403, reason: 'no server accepted for this connector' });
    expect(h.welcome?.accepted).toEqual([]);
    expect(t.relay.metrics().linksUp).toBe(0);
  });

  it('spreads sessions over the links of a server (fewest sessions first)', async () => {
    t = await startTestRelay();
    const a = await link();
    const b = await link();
    const agents: AgentClient[] = [];
    for (let i = 0; i < 4; i++) agents.push(await AgentClient.open(t, i % 2 ? SUPPORT : SUPPORT_2, 'crm'));
    await expect.poll(() => a.sessions.size + b.sessions.size, { timeout: 3000 }).toBe(4);
    expect([a.sessions.size, b.sessions.size]).toEqual([2, 2]);
    for (const ag of agents) ag.ws.close();
  });
});

describe('link protocol errors close the link with 1002', () => {
  it.each<[string, (h: HarnessConnector) => void]>([
    ['a text frame', (h) => h.ws.send('{"type":"hello"}')],
    ['DATA before HELLO', (h) => h.sendFrame(encodeData(1, '{}'))],
    ['an unknown frame type', (h) => h.sendFrame(Buffer.from([0x7f, 0, 0, 0, 0]))],
    ['a frame shorter than its header', (h) => h.sendFrame(Buffer.from([0x01, 0]))],
    ['HELLO whose servers is not a list', (h) => h.sendFrame(encodeControl(FrameType.HELLO, 0, { version: 1, servers: 'crm' }))],
    ['HELLO without a version', (h) => h.sendFrame(encodeControl(FrameType.HELLO, 0, { servers: ['crm'] }))],
    ['a control payload that is not an object', (h) => h.sendFrame(Buffer.concat([Buffer.from([0x01, 0, 0, 0, 0]), Buffer.from('[1]')]))],
  ])('%s', async (_label, send) => {
    t = await startTestRelay();
    const h = await HarnessConnector.dial(t, CRM_CONNECTOR);
    harnesses.push(h);
    send(h);
    expect((await within(h.closed, 3000, 'close')).code).toBe(1002);
    expect(t.relay.metrics().linkProtocolErrors).toBe(1);
  });

  it.each<[string, (h: HarnessConnector) => void]>([
    ['a second HELLO', (h) => h.hello(['crm'])],
    ['OPEN sent by the connector', (h) => h.sendFrame(encodeControl(FrameType.OPEN, 1, { server: 'crm', agent: SUPPORT }))],
    ['WELCOME sent by the connector', (h) => h.sendFrame(encodeControl(FrameType.WELCOME, 0, {}))],
    ['DATA for a session never opened', (h) => h.sendFrame(encodeData(42, '{}'))],
    ['WINDOW for a session never opened', (h) => h.sendFrame(encodeWindow(42, 10))],
    ['a session frame with session id 0', (h) => h.sendFrame(encodeData(0, '{}'))],
  ])('after WELCOME: %s', async (_label, send) => {
    t = await startTestRelay();
    const h = await link();
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    await h.session(1);
    send(h);
    expect((await within(h.closed, 3000, 'close')).code).toBe(1002);
    expect((await agent.closedWithin()).code).toBe(4503);
  });

  it('a frame for a session that was closed already is ignored', async () => {
    t = await startTestRelay();
    const h = await link();
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    const s = await h.session(1);
    agent.ws.close();
    await h.until(() => s.closedBy, 'CLOSE');
    h.sendData(s.id, { jsonrpc: '2.0', method: 'notifications/late' });
    h.sendFrame(encodeControl(FrameType.CLOSE, s.id, { code: 1000, reason: 'late' }));
    const again = await AgentClient.open(t, SUPPORT, 'crm');
    expect((await again.call('ping')).result).toEqual({});
    expect(t.relay.metrics().linkProtocolErrors).toBe(0);
  });

  it('DATA before OPEN_OK is a protocol error', async () => {
    t = await startTestRelay();
    const h = await link();
    h.onOpen = () => 'ignore';
    await AgentClient.open(t, SUPPORT, 'crm');
    const s = await h.session(1);
    h.sendData(s.id, { jsonrpc: '2.0', method: 'notifications/x' });
    expect((await within(h.closed, 3000, 'close')).code).toBe(1002);
  });

  it('a link frame larger than maxServerMessageBytes + 5 closes the link with 1009', async () => {
    t = await startTestRelay({ limits: { maxServerMessageBytes: 4096 } });
    const h = await link();
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    const s = await h.session(1);
    h.sendData(s.id, `{"jsonrpc":"2.0","method":"n","params":{"x":"${'a'.repeat(5000)}"}}`);
    expect((await within(h.closed, 3000, 'close')).code).toBe(1009);
    expect((await agent.closedWithin()).code).toBe(4503);
    await expect.poll(() => t?.audit.records.filter((r) => r.type === 'link.down')).toEqual([expect.objectContaining({ code: 1009, reason: 'Max payload size exceeded' })]);
  });
});

describe('timers', () => {
  it('closes a link that sends no HELLO in time with 1002', async () => {
    t = await startTestRelay({ timing: { helloTimeoutMs: 150 } });
    const h = await HarnessConnector.dial(t, CRM_CONNECTOR);
    harnesses.push(h);
    const started = Date.now();
    expect((await within(h.closed, 3000, 'close')).code).toBe(1002);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
  });

  it('terminates a link that stops answering pings; its sessions get 4509', async () => {
    t = await startTestRelay({ timing: { heartbeatIntervalMs: 60, idleTicks: 2 } });
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm'], { autoPong: false });
    harnesses.push(h);
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    await h.session(1);
    expect((await within(h.closed, 3000, 'close')).code).toBe(1006);
    expect((await agent.closedWithin()).code).toBe(4509);
  });

  it('keeps a link and an agent that answer pings', async () => {
    t = await startTestRelay({ timing: { heartbeatIntervalMs: 50, idleTicks: 2 } });
    const h = await link();
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    await sleep(500);
    expect((await agent.call('ping')).result).toEqual({});
    expect(t.relay.metrics().linksUp).toBe(1);
  });

  it('closes a session the connector does not open in time with 4504 and tells the connector', async () => {
    t = await startTestRelay({ limits: { openTimeoutMs: 200 } });
    const h = await link();
    h.onOpen = () => 'ignore';
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    expect((await agent.closedWithin()).code).toBe(4504);
    const s = await h.session(1);
    expect((await h.until(() => s.closedBy, 'CLOSE')).code).toBe(4504);
  });
});

describe('GOAWAY from the connector', () => {
  it('stops new sessions on that link; open sessions keep working', async () => {
    t = await startTestRelay();
    const h = await link();
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    await h.session(1);
    h.sendFrame(encodeControl(FrameType.GOAWAY, 0, { code: 1001, reason: 'connector restarting' }));
    await within(
      (async () => {
        while (t.relay.servers().length > 0) await sleep(10);
      })(),
      2000,
      'the link to leave the registry',
    );
    const o = await outcome(connect(t, '/v1/agent/crm', await t.creds(SUPPORT_2), AGENT_SUBPROTOCOL));
    expect(o).toMatchObject({ kind: 'refused', status: 503 });
    expect((await agent.call('tools/call', { name: 'echo' })).result).toBeDefined();
  });
});

describe('identities', () => {
  it('a connector of another server cannot register crm', async () => {
    t = await startTestRelay();
    const h = await HarnessConnector.dial(t, `${TD}/connector/tickets`);
    harnesses.push(h);
    h.hello(['crm', 'tickets']);
    const w = await h.until(() => h.welcome, 'WELCOME');
    expect(w.accepted).toEqual(['tickets']);
    expect(w.rejected.map((r) => r.server)).toEqual(['crm']);
    expect(t.relay.servers()).toEqual(['tickets']);
  });
});
