// EVENT frames: the connector reports what it refused a session's contained server; the relay
// records egress.denied with the session's agent and server, bounded per session.
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, encodeControl } from '@switchboard/protocol';
import type { PolicyDocument } from '../../src/policy/document.js';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, SUPPORT, TD } from '../helpers/ids.js';
import { startTestRelay, type TestRelay } from '../helpers/relay.js';

const POLICY: PolicyDocument = {
  trustDomain: 'example.org',
  servers: { crm: { connectors: [CRM_CONNECTOR] } },
  rules: [{ id: 'support', agents: [`${TD}/agent/support/*`], servers: ['crm'], tools: { allow: ['*'] } }],
};

let t: TestRelay;
let h: HarnessConnector;
afterEach(async () => {
  h?.close();
  await t?.close();
});

const until = async (ok: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe('EVENT egress.denied', () => {
  it('is recorded with the session, agent, server and connector, at most 256 per session', async () => {
    t = await startTestRelay({ policy: POLICY });
    h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    const sid = (await h.session(1)).id;
    h.sendFrame(encodeControl(FrameType.EVENT, sid, { kind: 'egress.denied', destination: 'exfil.attacker.example', port: 443, reason: 'exfil.attacker.example:443 is not in egress' }));
    for (let i = 0; i < 300; i++) h.sendFrame(encodeControl(FrameType.EVENT, sid, { kind: 'egress.denied', destination: `h${i}.example`, port: 443, reason: 'x' }));
    await until(() => t.audit.records.filter((r) => r.type === 'egress.denied').length >= 256);
    await new Promise((r) => setTimeout(r, 50));
    const records = t.audit.records.filter((r) => r.type === 'egress.denied');
    expect(records).toHaveLength(256);
    expect(records[0]).toEqual({
      type: 'egress.denied',
      sessionId: expect.any(String),
      server: 'crm',
      agent: SUPPORT,
      connector: CRM_CONNECTOR,
      destination: 'exfil.attacker.example',
      port: 443,
      reason: 'exfil.attacker.example:443 is not in egress',
    });
    expect(t.relay.metrics().egressDenied).toBe(256);
    // The session is unaffected.
    expect((await agent.call('tools/list')).result.tools.length).toBeGreaterThan(0);
  });

  it('a malformed EVENT is a protocol error on the link (1002)', async () => {
    t = await startTestRelay({ policy: POLICY });
    h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    await AgentClient.open(t, SUPPORT, 'crm');
    const sid = (await h.session(1)).id;
    const closed = new Promise<number>((r) => h.ws.once('close', (code: number) => r(code)));
    h.sendFrame(encodeControl(FrameType.EVENT, sid, { kind: 'egress.denied', destination: '', port: 443, reason: '' }));
    expect(await closed).toBe(1002);
    expect(t.audit.records.filter((r) => r.type === 'egress.denied')).toEqual([]);
  });
});
