// isolation: shared — one real stdio MCP server process (test/fixtures/shared-server.mjs) serves
// several agent sessions through the real connector; the scripted relay link sees each session's
// stream. Every test asserts what each session receives, and that nothing reaches the other.
import { CloseCode, FrameType, type Frame } from '@switchboard/protocol';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConnectorConfig, startConnector, type Connector } from '../../src/index.js';
import { until, type HarnessLink } from '../harness/relay-harness.js';
import { INITIALIZED, call, memoryLogger, setup, uncontained } from '../harness/setup.js';

const SHARED_SERVER = fileURLToPath(new URL('../fixtures/shared-server.mjs', import.meta.url));
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const init = (id: number | string = 1) => ({
  jsonrpc: '2.0',
  id,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: { roots: {} }, clientInfo: { name: 'harness', version: '1.0.0' } },
});

async function shared() {
  const s = await setup();
  cleanup.push(() => s.harness.close());
  const config = parseConnectorConfig({ relays: [s.harness.url], identity: s.identity, servers: { shared: uncontained({ command: process.execPath, args: [SHARED_SERVER], isolation: 'shared' }) } });
  const connector = await startConnector(config, { logger: memoryLogger(), backoff: { baseMs: 10, capMs: 50 }, drainTimeoutMs: 0 });
  cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
  const link = await s.harness.link(1);
  await link.frame((f) => f.type === FrameType.HELLO);
  return { ...s, connector, link };
}

const counters = (c: Connector): Record<string, number> => (c as unknown as { counters(): Record<string, number> }).counters();
const text = (m: Record<string, unknown>): string => ((m.result as { content: { text: string }[] }).content[0] as { text: string }).text;

/** messages lists every message the connector sent on `id` so far. */
function messages(link: HarnessLink, id: number): Record<string, unknown>[] {
  return link.frames.filter((f): f is Extract<Frame, { type: 0x20 }> => f.type === FrameType.DATA && f.sessionId === id).map((f) => JSON.parse(f.data.toString()) as Record<string, unknown>);
}

async function open(link: HarnessLink, id: number): Promise<void> {
  link.open(id, 'shared', `spiffe://example.org/agent/${id}`);
  await link.frame((f) => f.type === FrameType.OPEN_OK && f.sessionId === id, 10_000, 'OPEN_OK');
  link.window(id, 1024 * 1024);
  link.data(id, init());
  const r = await link.json(id, (m) => m.id === 1);
  expect((r.result as { serverInfo: { name: string } }).serverInfo.name).toBe('shared');
  link.data(id, INITIALIZED);
}

async function ask(link: HarnessLink, session: number, id: number | string, tool: string, args: Record<string, unknown> = {}, meta?: Record<string, unknown>): Promise<string> {
  const m = call(id, tool, args) as { params: Record<string, unknown> };
  if (meta) m.params._meta = meta;
  link.data(session, m);
  return text(await link.json(session, (x) => x.id === id && x.method === undefined));
}

describe('isolation: shared', () => {
  it('serves every session from one process, answers initialize per session and keeps equal request ids apart', async () => {
    const { link } = await shared();
    await open(link, 1);
    await open(link, 2);
    const [pid1, pid2] = [await ask(link, 1, 2, 'pid'), await ask(link, 2, 2, 'pid')];
    expect(pid1).toBe(pid2);
    expect(await ask(link, 1, 3, 'count')).toBe('1');
    expect(await ask(link, 2, 3, 'count')).toBe('2'); // one server, its state shared
    // The same id in flight on both sessions at once: each gets its own answer, only its own.
    link.data(1, call(9, 'slow', { text: 'one', ms: 30 }));
    link.data(2, call(9, 'slow', { text: 'two', ms: 10 }));
    const [a, b] = await Promise.all([link.json(1, (m) => m.id === 9), link.json(2, (m) => m.id === 9)]);
    expect([text(a), text(b)]).toEqual(['slow one', 'slow two']);
    for (const s of [1, 2]) expect(messages(link, s).filter((m) => m.id === 9)).toHaveLength(1);
    expect(messages(link, 1).filter((m) => m.id === 1)).toHaveLength(1); // one initialize answer each
  });

  it('routes progress by token, even when both sessions use the same token', async () => {
    const { link } = await shared();
    await open(link, 1);
    await open(link, 2);
    const [r1, r2] = await Promise.all([ask(link, 1, 5, 'slow', { text: 'one', ms: 20 }, { progressToken: 'tok' }), ask(link, 2, 5, 'slow', { text: 'two', ms: 20 }, { progressToken: 'tok' })]);
    expect([r1, r2]).toEqual(['slow one', 'slow two']);
    const progress = (s: number) => messages(link, s).filter((m) => m.method === 'notifications/progress').map((m) => m.params as { progressToken: string; message: string });
    expect(progress(1)).toEqual([1, 2, 3].map((i) => expect.objectContaining({ progressToken: 'tok', message: `one:${i}` })));
    expect(progress(2)).toEqual([1, 2, 3].map((i) => expect.objectContaining({ progressToken: 'tok', message: `two:${i}` })));
  });

  it('sends resources/updated only to the sessions subscribed to that URI, list_changed to all', async () => {
    const { link } = await shared();
    await open(link, 1);
    await open(link, 2);
    link.data(1, { jsonrpc: '2.0', id: 20, method: 'resources/subscribe', params: { uri: 'mem://a' } });
    link.data(2, { jsonrpc: '2.0', id: 20, method: 'resources/subscribe', params: { uri: 'mem://b' } });
    await Promise.all([link.json(1, (m) => m.id === 20), link.json(2, (m) => m.id === 20)]);
    expect(await ask(link, 2, 21, 'touch', { uri: 'mem://a' })).toBe('touched mem://a (subscribed: mem://a,mem://b)');
    await link.json(1, (m) => m.method === 'notifications/resources/updated');
    expect(messages(link, 1).filter((m) => m.method === 'notifications/resources/updated').map((m) => m.params)).toEqual([{ uri: 'mem://a' }]);
    expect(messages(link, 2).filter((m) => m.method === 'notifications/resources/updated')).toEqual([]);
    // Session 2 leaves: its subscription goes with it, session 1's stays.
    link.closeSession(2);
    await until(() => true);
    expect(await ask(link, 1, 22, 'touch', { uri: 'mem://b' })).toMatch(/^touched mem:\/\/b \(subscribed: mem:\/\/a\)$/);
    expect(await ask(link, 1, 23, 'changed')).toBe('changed');
    await link.json(1, (m) => m.method === 'notifications/tools/list_changed');
  });

  it('gives a log message or a server request to the one session in flight, and refuses a request it cannot attribute', async () => {
    const { link } = await shared();
    await open(link, 1);
    await open(link, 2);
    expect(await ask(link, 1, 30, 'log', { text: 'one' })).toBe('logged');
    expect(messages(link, 1).filter((m) => m.method === 'notifications/message').map((m) => (m.params as { data: string }).data)).toEqual(['log for one']);
    expect(messages(link, 2).filter((m) => m.method === 'notifications/message')).toEqual([]);

    // Session 1 alone in flight: the server's roots/list reaches session 1, whose answer reaches the server.
    link.data(1, call(31, 'ask'));
    const req = await link.json(1, (m) => m.method === 'roots/list');
    link.data(1, { jsonrpc: '2.0', id: req.id, result: { roots: [{ uri: 'file:///one', name: 'one' }] } });
    expect(text(await link.json(1, (m) => m.id === 31))).toBe('roots [{"uri":"file:///one","name":"one"}]');

    // Both sessions in flight: nobody can tell whose the request is; it is refused, shown to no one.
    link.data(2, call(32, 'slow', { text: 'two', ms: 200 }));
    await new Promise((r) => setTimeout(r, 30));
    expect(await ask(link, 1, 33, 'ask')).toMatch(/^refused .*cannot be attributed/);
    await link.json(2, (m) => m.id === 32);
    expect(messages(link, 2).filter((m) => m.method === 'roots/list')).toEqual([]);
    expect(messages(link, 1).filter((m) => m.method === 'roots/list')).toHaveLength(1);
  });

  it('fails every attached session with 4502 when the shared process dies, and starts a new one', async () => {
    const { link, connector } = await shared();
    await open(link, 1);
    await open(link, 2);
    const pid = await ask(link, 1, 2, 'pid');
    link.data(1, call(3, 'exit'));
    const closes = await Promise.all([1, 2].map((id) => link.frame((f) => f.type === FrameType.CLOSE && f.sessionId === id, 5000, `CLOSE ${id}`)));
    for (const c of closes) {
      const p = (c as Extract<Frame, { type: 0x30 }>).payload;
      expect(p.code).toBe(CloseCode.BACKEND_FAILED);
      expect(p.reason).toMatch(/^shared backend ended \(backend process exited with code 7\)/);
    }
    expect(counters(connector).sharedRestarts).toBe(1);
    await open(link, 3);
    const pid3 = await ask(link, 3, 2, 'pid');
    expect(pid3).not.toBe(pid);
    expect(await ask(link, 3, 4, 'count')).toBe('1'); // a new process: its state starts over
  });
});
