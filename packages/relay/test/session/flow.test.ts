import { encodeWindow } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector, type HarnessSession } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, SUPPORT, SUPPORT_2 } from '../helpers/ids.js';
import { startTestRelay, type TestRelay } from '../helpers/relay.js';
import { sleep } from '../helpers/time.js';

const WINDOW = 16 * 1024;

let t: TestRelay;
let h: HarnessConnector;

afterEach(async () => {
  h?.ws.terminate();
  await t?.close();
});

async function twoSessions(limits: Parameters<typeof startTestRelay>[0] = {}) {
  t = await startTestRelay(limits);
  h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
  const a = await AgentClient.open(t, SUPPORT, 'crm');
  const sa = await h.session(1);
  const b = await AgentClient.open(t, SUPPORT_2, 'crm');
  const sb = await h.session(2);
  return { a, sa, b, sb };
}

function notification(bytes: number, seq: number): string {
  const head = `{"jsonrpc":"2.0","method":"notifications/message","params":{"seq":${seq},"data":"`;
  const tail = '"}}';
  return head + 'x'.repeat(Math.max(0, bytes - head.length - tail.length)) + tail;
}

/**
 * pump sends notifications to `s` while the harness has credit, as a well-behaved connector
 * does; it stops when no WINDOW has come back for `stallMs`. Returns how many it sent.
 */
async function pump(s: HarnessSession, size: number, stallMs: number, maxBytes: number): Promise<{ sent: number; stalled: boolean }> {
  let sent = 0;
  let bytes = 0;
  while (bytes < maxBytes) {
    if (s.credit > 0) {
      const msg = notification(size, sent);
      h.sendData(s.id, msg);
      sent++;
      bytes += msg.length;
      if (sent % 16 === 0) await sleep(0);
      continue;
    }
    const waitedFrom = Date.now();
    while (s.credit <= 0 && Date.now() - waitedFrom < stallMs) await sleep(5);
    if (s.credit <= 0) return { sent, stalled: true };
  }
  return { sent, stalled: false };
}

describe('limits', () => {
  it('an oversized agent message closes only its own session (1009); the other session on the link keeps working', async () => {
    const { a, sa, b } = await twoSessions({ limits: { maxMessageBytes: 64 * 1024 } });
    a.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { blob: 'y'.repeat(100 * 1024) } } });
    expect((await a.closedWithin()).code).toBe(1009);
    expect((await h.until(() => sa.closedBy, 'CLOSE for the oversized session')).code).toBe(1000);
    expect(h.messages(sa.id)).toEqual([]);
    expect((await b.call('tools/call', { name: 'echo' })).result.content[0].text).toBe('echo on session 2');
    expect(t.relay.metrics().linksUp).toBe(1);
    // Recorded as it was sent to the agent, not as the 1006 ws reports after closing it itself.
    expect(t.audit.records.filter((r) => r.type === 'session.close')).toEqual([expect.objectContaining({ code: 1009, reason: 'Max payload size exceeded' })]);
    expect(t.relay.metrics().sessionsClosed).toEqual({ 1009: 1 });
  });

  it('a message just under the limit passes', async () => {
    const { a } = await twoSessions({ limits: { maxMessageBytes: 64 * 1024 } });
    const r = await a.call('tools/call', { name: 'echo', arguments: { blob: 'y'.repeat(60 * 1024) } });
    expect(r.result).toBeDefined();
  });
});

describe('flow control', () => {
  it('a session whose agent stops reading does not stall another session on the same link', async () => {
    const { a, sa, b } = await twoSessions({ limits: { sessionWindowBytes: WINDOW } });
    a.ws.pause(); // agent A stops reading its socket
    // The connector sends to A within credit until the relay stops returning WINDOW for A.
    const { sent, stalled } = await pump(sa, 8 * 1024, 400, 48 * 1024 * 1024);
    expect(stalled).toBe(true);
    expect(sa.credit).toBeLessThanOrEqual(0);
    // Meanwhile B's calls go through, promptly.
    const started = Date.now();
    for (let i = 0; i < 5; i++) expect((await b.call('tools/call', { name: 'echo' })).result).toBeDefined();
    expect(Date.now() - started).toBeLessThan(2000);
    // A's credit is still withheld: the relay holds at most a bounded backlog for A.
    await sleep(100);
    expect(sa.credit).toBeLessThanOrEqual(0);
    // When A reads again, everything arrives, in order, and credit comes back.
    a.ws.resume();
    await expect.poll(() => a.received.length, { timeout: 10_000, interval: 20 }).toBe(sent);
    const seqs = a.received.map((m) => (JSON.parse(m) as { params: { seq: number } }).params.seq);
    expect(seqs).toEqual(Array.from({ length: sent }, (_, i) => i));
    await expect.poll(() => sa.credit, { timeout: 5000 }).toBeGreaterThan(0);
  });

  it('a flooding agent is paused when its credit is spent; the other session keeps moving', async () => {
    // Queue bound: window + maxMessageBytes = 80 KiB. The agent sends 2 MiB while the connector
    // returns no credit: only pausing the agent's socket keeps the relay under that bound.
    const { a, sa, b, sb } = await twoSessions({ limits: { sessionWindowBytes: WINDOW, maxMessageBytes: 64 * 1024 } });
    sa.grant = false; // the connector does not return credit for A (a slow backend)
    const total = 2048;
    for (let i = 0; i < total; i++) a.send(notification(1024, i));
    await sleep(500);
    const bytesA = () => sa.received.reduce((n, m) => n + Buffer.byteLength(m), 0);
    // At most one window plus one message went out for A; the rest waits in the agent's socket.
    expect(bytesA()).toBeGreaterThanOrEqual(WINDOW);
    expect(bytesA()).toBeLessThanOrEqual(WINDOW + 1024);
    expect(sa.closedBy).toBeUndefined();
    expect((await b.call('tools/call', { name: 'echo' })).result).toBeDefined();
    expect(h.messages(sb.id).length).toBe(1);
    // Granting credit lets the rest through, in order; A was never closed.
    sa.grant = true;
    h.sendFrame(encodeWindow(sa.id, bytesA()));
    await expect.poll(() => sa.received.length, { timeout: 20_000, interval: 20 }).toBe(total);
    expect(h.messages(sa.id).map((m) => (m.params as { seq: number }).seq)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(a.ws.readyState).toBe(a.ws.OPEN);
    expect(sa.closedBy).toBeUndefined();
  });

  it('an agent that floods requests the relay answers itself, without reading, is bounded too', async () => {
    const { a, b } = await twoSessions();
    a.ws.pause();
    // Each request is a denied tool with an 8 KiB name; the relay answers it itself, echoing the
    // name. 1,500 of them are ~12 MB each way, far more than loopback socket buffers hold.
    const total = 1500;
    const name = `delete_${'x'.repeat(8000)}`;
    for (let i = 0; i < total; i++) a.send({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name } });
    // Wait until the relay stops answering (no change for 400 ms): it must stop well short of all.
    const denied = () => t.relay.metrics().messagesDenied.tool_denied;
    let last = -1;
    for (let waited = 0; waited < 15_000 && denied() !== last; waited += 400) {
      last = denied();
      await sleep(400);
    }
    expect(denied()).toBeGreaterThan(0);
    expect(denied()).toBeLessThan(total);
    expect((await b.call('tools/call', { name: 'echo' })).result).toBeDefined();
    a.ws.resume();
    await expect.poll(() => a.received.length, { timeout: 20_000, interval: 50 }).toBe(total);
  });

  it('the connector returns credit to the relay and a long exchange never blocks', async () => {
    const { a } = await twoSessions({ limits: { sessionWindowBytes: WINDOW } });
    for (let i = 0; i < 100; i++) {
      const r = await a.call('tools/call', { name: 'echo', arguments: { pad: 'p'.repeat(1000) } });
      expect(r.result).toBeDefined();
    }
  });
});
