// The relay's side of session resumption (docs/protocol.md, "Resuming a session"), with a harness
// connector that controls every frame: the offer and the token, a resume routed to the connector
// holding the session, and every refusal before and after the upgrade.
import type { IncomingMessage } from 'node:http';
import { AGENT_SUBPROTOCOL, CloseCode, FrameType, RESUME_HEADER, decodeResumeToken, encodeControl, encodeResumeToken } from '@switchboard/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, OUTSIDER, SUPPORT, STANDARD_POLICY, TD } from '../helpers/ids.js';
import { connect, outcome, startTestRelay, type TestRelay } from '../helpers/relay.js';
import { within } from '../helpers/time.js';

const CREDENTIAL = { id: 'A'.repeat(22), secret: 'b'.repeat(43) };
const TOKEN = encodeResumeToken({ connector: CRM_CONNECTOR, server: 'crm', ...CREDENTIAL });

let t: TestRelay;
let h: HarnessConnector;
beforeEach(async () => {
  t = await startTestRelay({ policy: { ...STANDARD_POLICY, revoked: { ids: [`${TD}/agent/support/mallory`] } } });
  h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
});
afterEach(async () => {
  h.close();
  await t.close();
});

/** dial opens an agent upgrade with the resume header `header` (none when undefined). */
async function dial(id: string, header: string | undefined, server = 'crm') {
  const ws = connect(t, `/v1/agent/${server}`, await t.creds(id), AGENT_SUBPROTOCOL, header === undefined ? {} : { headers: { [RESUME_HEADER]: header } });
  let upgradeHeaders: IncomingMessage['headers'] = {};
  ws.once('upgrade', (res: IncomingMessage) => (upgradeHeaders = res.headers));
  const binary: unknown[] = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) binary.push(JSON.parse(data.toString('utf8')));
  });
  return { ws, result: await outcome(ws), headers: () => upgradeHeaders, binary };
}

describe('the offer: a session that may be resumed gets a token', () => {
  it('an agent that offers (Switchboard-Resume: v1) gets the token of the credential the connector gave', async () => {
    h.onOpen = () => 'ignore';
    const a = await dial(SUPPORT, 'v1');
    expect(a.result.kind).toBe('open');
    expect(a.headers()[RESUME_HEADER.toLowerCase()]).toBe('v1');
    const s = await h.session(1);
    expect(s.open).toEqual({ server: 'crm', agent: SUPPORT, resumable: true });
    h.sendFrame(encodeControl(FrameType.OPEN_OK, s.id, { resume: { ...CREDENTIAL, graceMs: 30_000 } }));
    await within(
      (async () => {
        while (a.binary.length === 0) await new Promise((r) => setTimeout(r, 10));
      })(),
      5000,
      'the session message',
    );
    expect(a.binary).toEqual([{ type: 'session', resumed: false, token: TOKEN, graceMs: 30_000 }]);
    expect(decodeResumeToken(TOKEN)).toEqual({ connector: CRM_CONNECTOR, server: 'crm', ...CREDENTIAL });
    (a.ws as WebSocket).close();
  });

  it('an agent that does not offer gets no token, even when a connector sends a credential', async () => {
    h.onOpen = () => 'ignore';
    const a = await dial(SUPPORT, undefined);
    const s = await h.session(1);
    expect(s.open).toEqual({ server: 'crm', agent: SUPPORT });
    h.sendFrame(encodeControl(FrameType.OPEN_OK, s.id, { resume: { ...CREDENTIAL, graceMs: 30_000 } }));
    const agent = new AgentClient(a.ws as WebSocket);
    expect((await agent.call('ping')).result).toEqual({});
    expect(a.binary).toEqual([]);
    agent.ws.close();
  });

  it('a resumable session whose agent connection is lost (not closed) tells the connector 4509, so it waits to be resumed; a closed one 1000', async () => {
    h.onOpen = () => 'ignore';
    const open = async (n: number) => {
      const a = await dial(SUPPORT, 'v1');
      const s = await h.session(n);
      h.sendFrame(encodeControl(FrameType.OPEN_OK, s.id, { resume: { ...CREDENTIAL, graceMs: 30_000 } }));
      const agent = new AgentClient(a.ws as WebSocket);
      expect((await agent.call('ping')).result).toEqual({});
      return { agent, s };
    };
    const lost = await open(1);
    lost.agent.ws.terminate();
    await h.until(() => lost.s.closedBy, 'CLOSE for the lost session');
    expect(lost.s.closedBy).toEqual({ code: 4509, reason: 'agent connection lost' });
    const closed = await open(2);
    closed.agent.ws.close();
    await h.until(() => closed.s.closedBy, 'CLOSE for the closed session');
    expect(closed.s.closedBy).toEqual({ code: 1000, reason: 'agent closed' });
  });
});

describe('a resume', () => {
  it('goes to the connector named in the token as OPEN { resume }, is audited as session.resume, and the agent gets resumed: true', async () => {
    h.onOpen = () => 'ignore';
    const a = await dial(SUPPORT, `v1 ${TOKEN}`);
    expect(a.result.kind).toBe('open');
    const s = await h.session(1);
    expect(s.open).toEqual({ server: 'crm', agent: SUPPORT, resume: CREDENTIAL });
    h.sendFrame(encodeControl(FrameType.OPEN_OK, s.id, { resumed: true, resume: { ...CREDENTIAL, graceMs: 30_000 } }));
    const agent = new AgentClient(a.ws as WebSocket);
    expect((await agent.call('ping')).result).toEqual({});
    expect(a.binary).toEqual([{ type: 'session', resumed: true, token: TOKEN, graceMs: 30_000 }]);
    const rec = t.audit.records.find((r) => r.type === 'session.resume');
    expect(rec).toMatchObject({ type: 'session.resume', server: 'crm', agent: SUPPORT, connector: CRM_CONNECTOR, resumeId: CREDENTIAL.id });
    expect(t.audit.records.some((r) => r.type === 'session.open')).toBe(false);
    // The secret is never written anywhere in the trail.
    expect(JSON.stringify(t.audit.records)).not.toContain(CREDENTIAL.secret);
    agent.ws.close();
  });

  it('refused by the connector (OPEN_FAIL 4410): the agent is closed with 4410 and the record says so', async () => {
    h.onOpen = () => 'ignore';
    const a = await dial(SUPPORT, `v1 ${TOKEN}`);
    const s = await h.session(1);
    h.sendFrame(encodeControl(FrameType.OPEN_FAIL, s.id, { code: CloseCode.RESUME_REFUSED, reason: 'no such session to resume' }));
    const agent = new AgentClient(a.ws as WebSocket);
    expect(await agent.closedWithin()).toEqual({ code: 4410, reason: 'no such session to resume' });
    await expect.poll(() => t.audit.records.find((r) => r.type === 'session.close')).toMatchObject({ code: 4410, agent: SUPPORT });
  });

  it('answered with a new backend session instead (OPEN_OK without resumed): closed 4410, the connector is told', async () => {
    h.onOpen = () => 'ok';
    const a = await dial(SUPPORT, `v1 ${TOKEN}`);
    const s = await h.session(1);
    const agent = new AgentClient(a.ws as WebSocket);
    expect((await agent.closedWithin()).code).toBe(4410);
    await h.until(() => s.closedBy, 'CLOSE');
    expect(s.closedBy?.code).toBe(4410);
  });

  it.each<[string, string, string, number, string]>([
    ['a malformed token', SUPPORT, 'v1 not-a-token!', 400, 'malformed resume token\n'],
    ['a token for another server', SUPPORT, `v1 ${encodeResumeToken({ connector: CRM_CONNECTOR, server: 'tickets', ...CREDENTIAL })}`, 400, 'the resume token is for another server\n'],
    ['a revoked identity with a good token', `${TD}/agent/support/mallory`, `v1 ${TOKEN}`, 403, 'this identity has been revoked\n'],
    ['an identity the policy does not grant the server', OUTSIDER, `v1 ${TOKEN}`, 403, 'this identity may not use this server\n'],
    ['a token naming a connector with no link here', SUPPORT, `v1 ${encodeResumeToken({ connector: `${TD}/connector/other`, server: 'crm', ...CREDENTIAL })}`, 409, 'the connector holding this session is not linked to this relay\n'],
  ])('%s is refused before the upgrade and reaches no connector', async (_label, id, header, status, body) => {
    const a = await dial(id, header);
    expect(a.result).toEqual({ kind: 'refused', status, body });
    expect(h.sessions.size).toBe(0);
    const rec = t.audit.records.find((r) => r.type === 'connection.refused');
    expect(rec).toMatchObject({ status, path: '/v1/agent/crm' });
    if (status === 409) expect(t.relay.metrics().upgradesRefused.resume_unavailable).toBe(1);
  });
});
