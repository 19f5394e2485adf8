// The connector's side of session resumption: a session opened with `resumable` gets a credential
// in OPEN_OK; when its link is lost the backend process lives on for resume.graceMs; an OPEN with
// the credential (same agent, same server, right secret) on any link re-attaches it. Real stdio
// backend (the echo fixture, whose `pid` tool names its process), harness relays.
import { CloseCode, FrameType, encodeControl, type Frame, type OpenOkPayload } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConnectorConfig, startConnector, type Connector } from '../../src/index.js';
import type { HarnessLink, HarnessRelay } from '../harness/relay-harness.js';
import { until } from '../harness/relay-harness.js';
import { alive, call, ECHO_SERVER, INIT, INITIALIZED, memoryLogger, setup, uncontained } from '../harness/setup.js';

const AGENT = 'spiffe://example.org/agent/a';
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function started(relays = 1, resume?: { graceMs: number }): Promise<{ harnesses: HarnessRelay[]; connector: Connector; logs: ReturnType<typeof memoryLogger> }> {
  const harnesses: HarnessRelay[] = [];
  let identity;
  for (let i = 0; i < relays; i++) {
    const s = await setup();
    cleanup.push(() => s.harness.close());
    harnesses.push(s.harness);
    identity = s.identity;
  }
  const logs = memoryLogger();
  const config = parseConnectorConfig({
    relays: harnesses.map((h) => h.url),
    identity,
    // Uncontained: these tests follow the backend by its host PID (harness/setup.ts).
    servers: { echo: uncontained({ command: process.execPath, args: [ECHO_SERVER] }) },
    ...(resume !== undefined ? { resume } : {}),
  });
  const connector = await startConnector(config, { logger: logs, backoff: { baseMs: 10, capMs: 50 }, drainTimeoutMs: 0, renew: false });
  cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
  await connector.ready();
  return { harnesses, connector, logs };
}

async function welcomed(harness: HarnessRelay, n: number): Promise<HarnessLink> {
  const link = await harness.link(n);
  await link.frame((f) => f.type === FrameType.HELLO);
  return link;
}

function text(m: Record<string, unknown>): string {
  return ((m.result as { content: { text: string }[] }).content[0] as { text: string }).text;
}

async function okOf(link: HarnessLink, id: number): Promise<Frame> {
  return link.frame((f) => (f.type === FrameType.OPEN_OK || f.type === FrameType.OPEN_FAIL) && f.sessionId === id, 8000, `OPEN answer for ${id}`);
}

/** resumable opens a session that asks for a credential, initializes it and returns the credential and the backend's pid. */
async function resumable(link: HarnessLink, id: number): Promise<{ credential: NonNullable<OpenOkPayload['resume']>; pid: number }> {
  link.send(encodeControl(FrameType.OPEN, id, { server: 'echo', agent: AGENT, resumable: true }));
  const ok = await okOf(link, id);
  if (ok.type !== FrameType.OPEN_OK || ok.payload.resume === undefined) throw new Error(`no credential: ${JSON.stringify(ok)}`);
  link.data(id, { ...INIT });
  await link.json(id, (m) => m.id === 1);
  link.data(id, INITIALIZED);
  link.data(id, call(2, 'pid'));
  return { credential: ok.payload.resume, pid: Number(text(await link.json(id, (m) => m.id === 2))) };
}

function resumeOpen(link: HarnessLink, id: number, resume: { id: string; secret: string }, agent = AGENT): void {
  link.send(encodeControl(FrameType.OPEN, id, { server: 'echo', agent, resume }));
}

describe('resumable sessions at the connector', () => {
  it('a lost link leaves the backend running; the credential re-attaches the same process on the next link', async () => {
    const { harnesses, connector } = await started();
    const [h] = harnesses as [HarnessRelay];
    const link1 = await welcomed(h, 1);
    const { credential, pid } = await resumable(link1, 1);
    expect(credential).toEqual({ id: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/), secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), graceMs: 30_000 });
    link1.drop();
    const link2 = await welcomed(h, 2);
    expect(alive(pid)).toBe(true);
    expect(connector.counters().sessionsDetached).toBe(1);
    resumeOpen(link2, 5, credential);
    const ok = await okOf(link2, 5);
    expect(ok).toMatchObject({ type: FrameType.OPEN_OK, payload: { resumed: true, resume: credential } });
    link2.data(5, call(3, 'pid'));
    expect(Number(text(await link2.json(5, (m) => m.id === 3)))).toBe(pid);
    expect(connector.counters()).toMatchObject({ sessionsOpened: 1, sessionsDetached: 1, sessionsResumed: 1, resumesRefused: 0 });
    // Resumed once, resumable again: the link is lost a second time and the session comes back again.
    link2.drop();
    const link3 = await welcomed(h, 3);
    resumeOpen(link3, 1, credential);
    expect((await okOf(link3, 1)).type).toBe(FrameType.OPEN_OK);
    link3.data(1, call(4, 'pid'));
    expect(Number(text(await link3.json(1, (m) => m.id === 4)))).toBe(pid);
  });

  it('a wrong secret, another agent, or an unknown id get OPEN_FAIL 4410 with one reason; the session is untouched', async () => {
    const { harnesses, connector, logs } = await started();
    const [h] = harnesses as [HarnessRelay];
    const link1 = await welcomed(h, 1);
    const { credential, pid } = await resumable(link1, 1);
    link1.drop();
    const link2 = await welcomed(h, 2);
    resumeOpen(link2, 2, { id: credential.id, secret: 'x'.repeat(43) });
    resumeOpen(link2, 3, credential, 'spiffe://example.org/agent/mallory');
    resumeOpen(link2, 4, { id: 'y'.repeat(22), secret: credential.secret });
    for (const id of [2, 3, 4]) {
      expect(await okOf(link2, id)).toMatchObject({ type: FrameType.OPEN_FAIL, payload: { code: CloseCode.RESUME_REFUSED, reason: 'no such session to resume' } });
    }
    expect(connector.counters().resumesRefused).toBe(3);
    expect(logs.entries.filter((e) => e.msg === 'resume refused').map((e) => e.obj.reason)).toEqual(['secret', 'identity', 'unknown']);
    expect(alive(pid)).toBe(true);
    resumeOpen(link2, 5, credential);
    expect((await okOf(link2, 5)).type).toBe(FrameType.OPEN_OK);
    // The secret is never logged.
    expect(JSON.stringify(logs.entries)).not.toContain(credential.secret);
  });

  it('no resume within resume.graceMs: the backend is closed and a late resume is refused', async () => {
    const { harnesses, connector } = await started(1, { graceMs: 300 });
    const [h] = harnesses as [HarnessRelay];
    const link1 = await welcomed(h, 1);
    const { credential, pid } = await resumable(link1, 1);
    link1.drop();
    await until(() => !alive(pid), 8000, 'the backend to be closed after the grace period');
    expect(connector.counters().resumeExpiries).toBe(1);
    const link2 = await welcomed(h, 2);
    resumeOpen(link2, 1, credential);
    expect(await okOf(link2, 1)).toMatchObject({ type: FrameType.OPEN_FAIL, payload: { code: CloseCode.RESUME_REFUSED } });
  });

  it('resume.graceMs: 0 gives no credential: the session ends with its link, as before', async () => {
    const { harnesses } = await started(1, { graceMs: 0 });
    const [h] = harnesses as [HarnessRelay];
    const link1 = await welcomed(h, 1);
    link1.send(encodeControl(FrameType.OPEN, 1, { server: 'echo', agent: AGENT, resumable: true }));
    const ok = await okOf(link1, 1);
    expect(ok).toMatchObject({ type: FrameType.OPEN_OK, payload: {} });
    expect((ok as { payload: OpenOkPayload }).payload.resume).toBeUndefined();
    link1.data(1, { ...INIT });
    await link1.json(1, (m) => m.id === 1);
    link1.data(1, call(2, 'pid'));
    const pid = Number(text(await link1.json(1, (m) => m.id === 2)));
    link1.drop();
    await until(() => !alive(pid), 8000, 'the backend to exit with its link');
  });

  it('a resume through another relay while the first link still looks up moves the session: CLOSE 4409 on the old link', async () => {
    const { harnesses } = await started(2);
    const [a, b] = harnesses as [HarnessRelay, HarnessRelay];
    const linkA = await welcomed(a, 1);
    const linkB = await welcomed(b, 1);
    const { credential, pid } = await resumable(linkA, 1);
    resumeOpen(linkB, 9, credential);
    expect((await okOf(linkB, 9)).type).toBe(FrameType.OPEN_OK);
    const moved = await linkA.frame((f) => f.type === FrameType.CLOSE && f.sessionId === 1, 5000, 'CLOSE on the old link');
    expect(moved).toMatchObject({ payload: { code: CloseCode.SESSION_MOVED, reason: 'session resumed through another relay' } });
    linkB.data(9, call(3, 'pid'));
    expect(Number(text(await linkB.json(9, (m) => m.id === 3)))).toBe(pid);
  });

  it('CLOSE 4509 from the relay (the agent connection was lost) keeps a resumable session for its agent', async () => {
    const { harnesses, connector } = await started();
    const [h] = harnesses as [HarnessRelay];
    const link = await welcomed(h, 1);
    const { credential, pid } = await resumable(link, 1);
    link.closeSession(1, CloseCode.LINK_LOST, 'agent connection lost');
    await until(() => connector.counters().sessionsDetached === 1, 5000, 'the session to be detached');
    expect(alive(pid)).toBe(true);
    resumeOpen(link, 2, credential);
    expect((await okOf(link, 2)).type).toBe(FrameType.OPEN_OK);
    link.data(2, call(3, 'pid'));
    expect(Number(text(await link.json(2, (m) => m.id === 3)))).toBe(pid);
  });
});
