// audit.durability strict: a recorded call is forwarded only once its record is fsynced, in
// order per session, without holding other sessions; a failed trail fails closed (-32050).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RelayAuditDurability } from '../../src/config/audit-config.js';
import { ControlledAuditFs } from '../helpers/audit-fs.js';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, SUPPORT, SUPPORT_2 } from '../helpers/ids.js';
import { startTestRelay, type TestRelay } from '../helpers/relay.js';
import { sleep } from '../helpers/time.js';

let dir: string;
let fs: ControlledAuditFs;
let t: TestRelay | undefined;
let h: HarnessConnector | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-audit-'));
  fs = new ControlledAuditFs();
});

afterEach(async () => {
  h?.close();
  fs.release();
  await t?.close();
  t = undefined;
  h = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function setup(durability: RelayAuditDurability = 'strict', limits = {}): Promise<{ t: TestRelay; h: HarnessConnector }> {
  t = await startTestRelay({ audit: { path: join(dir, 'audit.log'), durability, signingKey: 'none' }, auditFs: fs, admin: { listen: '127.0.0.1:0' }, limits });
  h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
  return { t, h };
}

/** settled waits until every record appended so far is on disk (nothing in flight). */
async function settled(relay: TestRelay): Promise<void> {
  await expect
    .poll(() => {
      const a = relay.relay.metrics().audit;
      return a !== null && a.lastSeq > 0 && a.durableSeq === a.lastSeq && a.pendingBytes === 0 && a.queued === 0;
    })
    .toBe(true);
}

function calls(harness: HarnessConnector, sid: number): unknown[] {
  return harness.messages(sid).filter((m) => m.method === 'tools/call').map((m) => m.id);
}

describe('strict: forward only after the request record is durable', () => {
  it('a tools/call reaches the connector only once its record is fsynced', async () => {
    const { t, h } = await setup();
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    const s = await h.session(1);
    await settled(t);
    const before = t.relay.metrics().audit?.lastSeq ?? 0;
    fs.hold();
    agent.request('tools/call', { name: 'echo', arguments: { n: 1 } }, 1);
    // The request record is appended and its fsync is in flight (held)…
    await expect.poll(() => fs.held).toBeGreaterThan(0);
    expect(t.relay.metrics().audit?.lastSeq).toBe(before + 1);
    await sleep(150);
    // …so the connector has not seen the call, and the agent has no answer.
    expect(calls(h, s.id)).toEqual([]);
    expect(agent.received).toEqual([]);
    fs.release();
    expect((await agent.next()).result.content[0].text).toBe(`echo on session ${s.id}`);
    expect(calls(h, s.id)).toEqual([1]);
    expect(t.relay.metrics().audit?.durableSeq).toBeGreaterThanOrEqual(before + 1);
  });

  it('keeps the order of one session while it waits, and other sessions keep moving', async () => {
    const { t, h } = await setup();
    const a = await AgentClient.open(t, SUPPORT, 'crm');
    const sa = await h.session(1);
    const b = await AgentClient.open(t, SUPPORT_2, 'crm');
    const sb = await h.session(2);
    await settled(t);
    fs.hold();
    a.request('tools/call', { name: 'echo', arguments: { n: 1 } }, 1);
    a.request('ping', undefined, 2);
    a.request('tools/call', { name: 'get_order', arguments: { n: 3 } }, 3);
    a.send({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: 1 } });
    await expect.poll(() => fs.held).toBeGreaterThan(0);
    // Session b is not held behind a's records: its ping goes through and is answered.
    expect(await b.call('ping')).toMatchObject({ result: {} });
    expect(h.messages(sb.id).map((m) => m.method)).toEqual(['ping']);
    // Session a's ping waits behind its first call: nothing of a has left yet.
    expect(h.messages(sa.id)).toEqual([]);
    fs.release();
    await h.until(() => h.messages(sa.id).length === 4, 'session a’s messages');
    expect(h.messages(sa.id).map((m) => m.id ?? m.method)).toEqual([1, 2, 3, 'notifications/progress']);
    expect([(await a.next()).id, (await a.next()).id, (await a.next()).id]).toEqual([1, 2, 3]);
  });

  it('a denied call is answered at once, without waiting for the disk', async () => {
    const { t, h } = await setup();
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    await h.session(1);
    await settled(t);
    fs.hold();
    const r = await agent.call('tools/call', { name: 'delete_customer' }, 'd');
    expect(r.error).toEqual({ code: -32602, message: 'Unknown tool: delete_customer' });
    expect(h.allMessages()).toEqual([]);
  });

  it('pipelined calls beyond the hold bound pause the agent and are all forwarded, in order, once durable', async () => {
    const { t, h } = await setup('strict', { sessionWindowBytes: 4096, maxMessageBytes: 65536 });
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    const s = await h.session(1);
    await settled(t);
    fs.hold();
    const ids = Array.from({ length: 40 }, (_, i) => i + 1);
    for (const id of ids) agent.request('tools/call', { name: 'echo', arguments: { pad: 'x'.repeat(1000), id } }, id);
    await expect.poll(() => fs.held).toBeGreaterThan(0);
    await sleep(100);
    expect(calls(h, s.id)).toEqual([]);
    fs.release();
    await h.until(() => calls(h, s.id).length === ids.length, 'every call', 10_000);
    expect(calls(h, s.id)).toEqual(ids);
    for (const id of ids) expect((await agent.next()).id).toBe(id);
  });

  it('batched: the call is forwarded while the flush is still in flight', async () => {
    const { t, h } = await setup('batched');
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    const s = await h.session(1);
    await settled(t);
    fs.hold();
    const r = await agent.call('tools/call', { name: 'echo' }, 1);
    expect(r.result).toBeDefined();
    expect(calls(h, s.id)).toEqual([1]);
    await expect.poll(() => fs.held).toBeGreaterThan(0);
  });
});

describe('strict: a failed trail fails closed', () => {
  it('the call waiting for its record gets -32050 and is never forwarded; later calls too; /readyz 503; counted', async () => {
    const { t, h } = await setup();
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    const s = await h.session(1);
    await settled(t);
    expect((await fetch(`${t.relay.adminUrl}/readyz`)).status).toBe(200);
    fs.hold();
    agent.request('tools/call', { name: 'echo', arguments: { n: 1 } }, 1);
    await expect.poll(() => fs.held).toBeGreaterThan(0);
    fs.fail();
    expect(await agent.next()).toEqual({ jsonrpc: '2.0', id: 1, error: { code: -32050, message: 'Audit trail unavailable; request not forwarded' } });
    expect((await agent.call('tools/call', { name: 'echo' }, 2)).error.code).toBe(-32050);
    expect((await agent.call('tools/call', { name: 'delete_customer' }, 3)).error.code).toBe(-32050);
    expect(calls(h, s.id)).toEqual([]);
    // The session itself stays up; requests that are not recorded still pass.
    expect((await agent.call('ping', undefined, 4)).result).toEqual({});
    const m = t.relay.metrics();
    expect(m.messagesDenied.audit_unavailable).toBe(3);
    expect(m.audit).toMatchObject({ available: false });
    expect(m.messagesForwarded.agentToServer).toBe(1); // the ping
    expect(await t.relay.prometheus()).toContain('switchboard_relay_audit_available 0\n');
    expect(await t.relay.prometheus()).toContain('switchboard_relay_messages_denied_total{reason="audit_unavailable"} 3\n');
    expect((await fetch(`${t.relay.adminUrl}/readyz`)).status).toBe(503);
  });
});
