import { AGENT_SUBPROTOCOL, CloseCode } from '@switchboard/protocol';
import { createTestCA } from '@switchboard/pki/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { watchExpiry } from '../../src/auth/expiry.js';
import { MemoryAuditSink } from '../../src/audit/sink.js';
import { startRelay } from '../../src/relay.js';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, RELAY_ID, STANDARD_POLICY, SUPPORT } from '../helpers/ids.js';
import { connect, outcome, startTestRelay, type TestRelay } from '../helpers/relay.js';
import { within } from '../helpers/time.js';

let t: TestRelay | undefined;
const harnesses: HarnessConnector[] = [];

afterEach(async () => {
  for (const h of harnesses.splice(0)) h.ws.terminate();
  await t?.close();
  t = undefined;
});

const SHORT = { ttlSeconds: 2 };

async function agentWith(relay: TestRelay, id: string, options: { ttlSeconds: number } | undefined): Promise<AgentClient> {
  const ws = connect(relay, '/v1/agent/crm', await relay.creds(id, options), AGENT_SUBPROTOCOL);
  const o = await outcome(ws);
  if (o.kind !== 'open') throw new Error(`agent could not open crm: ${JSON.stringify(o)}`);
  return new AgentClient(ws);
}

describe('a live connection ends when its certificate does', () => {
  it('an agent session closes with 4402 at notAfter; the connector is told, the record says why', async () => {
    t = await startTestRelay();
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    harnesses.push(h);
    const agent = await agentWith(t, SUPPORT, SHORT);
    const notAfter = new Date(Date.parse((await t.ca.issue(SUPPORT, SHORT)).leaf.validTo));
    // Calls work while the certificate is valid.
    expect((await agent.call('tools/call', { name: 'echo', arguments: {} })).result).toBeDefined();
    const closed = await agent.closedWithin(6000);
    expect(closed.code).toBe(CloseCode.IDENTITY_EXPIRED);
    expect(closed.reason).toMatch(/^agent certificate expired at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    expect(Date.parse(closed.reason.slice('agent certificate expired at '.length))).toBeLessThanOrEqual(notAfter.getTime());
    const session = await h.session(1);
    await h.until(() => session.closedBy, 'CLOSE for the session');
    expect(session.closedBy).toEqual({ code: 4402, reason: closed.reason });
    expect(t.audit.records.filter((r) => r.type === 'session.close')).toMatchObject([{ agent: SUPPORT, code: 4402, reason: closed.reason }]);
    expect(t.relay.metrics().expiryCloses).toBe(1);
    // The link is not the agent's: it stays up.
    expect(t.relay.servers()).toEqual(['crm']);
  });

  it('a connector link closes with 4402 at notAfter; its sessions end with 4503 (not resumable)', async () => {
    t = await startTestRelay();
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm'], {});
    harnesses.push(h);
    h.ws.terminate();
    // A link whose certificate lives two seconds.
    const ws = connect(t, '/v1/connector', await t.creds(CRM_CONNECTOR, SHORT), 'switchboard.v1');
    const o = await outcome(ws);
    expect(o.kind).toBe('open');
    const link = new HarnessConnector(ws);
    harnesses.push(link);
    link.hello(['crm']);
    await link.until(() => link.welcome, 'WELCOME');
    const agent = await agentWith(t, SUPPORT, undefined);
    expect((await agent.call('tools/call', { name: 'echo', arguments: {} })).result).toBeDefined();
    const closed = await within(link.closed, 6000, 'the link to close');
    expect(closed.code).toBe(CloseCode.IDENTITY_EXPIRED);
    expect(closed.reason).toMatch(/^connector certificate expired at /);
    expect((await agent.closedWithin()).code).toBe(CloseCode.NO_CONNECTOR);
    expect(t.audit.records.filter((r) => r.type === 'link.down').at(-1)).toMatchObject({ connector: CRM_CONNECTOR, code: 4402, reason: closed.reason });
    expect(t.relay.servers()).toEqual([]);
  });

  it('a certificate valid for an hour keeps its session (no early close)', async () => {
    t = await startTestRelay();
    harnesses.push(await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']));
    const agent = await agentWith(t, SUPPORT, undefined);
    await agent.expectQuiet(300);
    expect((await agent.call('tools/call', { name: 'echo', arguments: {} })).result).toBeDefined();
    expect(t.relay.metrics().expiryCloses).toBe(0);
  });
});

describe('watchExpiry', () => {
  it('fires once, at once, for a time already past', async () => {
    let fired = 0;
    watchExpiry(new Date(Date.now() - 1000), () => fired++);
    await new Promise((r) => setTimeout(r, 20));
    expect(fired).toBe(1);
  });

  it('does not fire once cancelled', async () => {
    let fired = 0;
    const w = watchExpiry(new Date(Date.now() + 30), () => fired++);
    w.cancel();
    await new Promise((r) => setTimeout(r, 80));
    expect(fired).toBe(0);
  });

  it('a notAfter 40 days away does not fire now (one timer cannot wait that long; it is re-armed)', async () => {
    let fired = 0;
    const w = watchExpiry(new Date(Date.now() + 40 * 86_400_000), () => fired++);
    await new Promise((r) => setTimeout(r, 30));
    expect(fired).toBe(0);
    w.cancel();
  });
});

describe('the relay and its own certificate', () => {
  it('refuses to start on an expired SVID, naming it', async () => {
    const ca = await createTestCA({ trustDomain: 'example.org' });
    const svid = await ca.issue(RELAY_ID, { expired: true });
    await expect(startRelay({ listen: '127.0.0.1:0', identity: { svid, bundle: ca.bundle }, policy: STANDARD_POLICY, audit: { sink: new MemoryAuditSink() } })).rejects.toMatchObject({
      code: 'RELAY_ERR_IDENTITY',
      message: expect.stringMatching(new RegExp(`^identity: the relay's certificate ${RELAY_ID} expired at .*; renew it \\(switchboard identity issue --force …\\) and start the relay again$`)),
    });
  });
});
