import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CloseCode, FrameType, LINK_PROTOCOL_VERSION, type Frame } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConnectorConfig, startConnector, type Connector, type StartConnectorOptions } from '../../src/index.js';
import type { HarnessRelay } from '../harness/relay-harness.js';
import { until, wait } from '../harness/relay-harness.js';
import { alive, call, CONNECTOR_ID, echoConfig, EXIT_AT_ONCE, INIT, INITIALIZED, memoryLogger, RAW_LINES, setup, type Setup } from '../harness/setup.js';

const fast: StartConnectorOptions = { backoff: { baseMs: 10, capMs: 50 }, drainTimeoutMs: 0 };
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function started(opts: Partial<Parameters<typeof setup>[0]> = {}, connectorOpts: StartConnectorOptions = {}, extraServers: Record<string, unknown> = {}): Promise<Setup & { connector: Connector; logs: ReturnType<typeof memoryLogger> }> {
  const s = await setup(opts);
  cleanup.push(() => s.harness.close());
  const logs = memoryLogger();
  const connector = await startConnector(echoConfig([s.harness.url], s.identity, extraServers), { logger: logs, ...fast, ...connectorOpts });
  cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
  return { ...s, connector, logs };
}

function isData(id: number) {
  return (f: Frame) => f.type === FrameType.DATA && f.sessionId === id;
}
function text(result: Record<string, unknown>): string {
  return ((result.result as { content: { text: string }[] }).content[0] as { text: string }).text;
}

/** welcomed waits for the n-th link's HELLO, which the harness answers with WELCOME at once. */
async function welcomed(harness: HarnessRelay, n = 1): Promise<Awaited<ReturnType<HarnessRelay['link']>>> {
  const link = await harness.link(n);
  await link.frame((f) => f.type === FrameType.HELLO);
  return link;
}

async function openSession(harness: HarnessRelay, id: number, server = 'echo'): Promise<void> {
  const link = await welcomed(harness);
  link.open(id, server);
  await link.frame((f) => f.type === FrameType.OPEN_OK && f.sessionId === id, 5000, 'OPEN_OK');
  link.data(id, { ...INIT });
  await link.json(id, (m) => m.id === 1);
  link.data(id, INITIALIZED);
}

describe('link handshake', () => {
  it('sends HELLO with the protocol version and every configured server, then is ready', async () => {
    const { harness, connector } = await started({}, {}, { tickets: { url: 'http://127.0.0.1:9/mcp' } });
    const link = await harness.link(1);
    const hello = (await link.frame((f) => f.type === FrameType.HELLO)) as Extract<Frame, { type: 0x01 }>;
    expect(hello.sessionId).toBe(0);
    expect(hello.payload.version).toBe(LINK_PROTOCOL_VERSION);
    expect(hello.payload.servers).toEqual(['echo', 'tickets']);
    expect(hello.payload.agent).toMatch(/^switchboard-connector\//);
    expect(link.peer.toString()).toBe(CONNECTOR_ID);
    await connector.ready();
    const [status] = connector.links();
    expect(status).toMatchObject({ relay: harness.url, state: 'up', linkId: 'link-1', accepted: ['echo', 'tickets'] });
  });

  it('logs each server the relay rejected, with its reason, and stays up for the accepted ones', async () => {
    const { connector, logs } = await started(
      { welcome: () => ({ accepted: ['echo'], rejected: [{ server: 'tickets', reason: 'not listed for this connector' }] }) },
      {},
      { tickets: { url: 'http://127.0.0.1:9/mcp' } },
    );
    await connector.ready();
    const warn = logs.entries.find((e) => e.msg === 'relay rejected server');
    expect(warn?.obj).toMatchObject({ server: 'tickets', reason: 'not listed for this connector' });
    expect(connector.links()[0]?.rejected).toEqual([{ server: 'tickets', reason: 'not listed for this connector' }]);
  });
});

describe('sessions over the link', () => {
  it('OPEN starts a real stdio MCP server that answers initialize and tools/call', async () => {
    const { harness, connector } = await started();
    await connector.ready();
    const link = await welcomed(harness);
    link.open(7, 'echo', 'spiffe://example.org/agent/support');
    await link.frame((f) => f.type === FrameType.OPEN_OK && f.sessionId === 7);
    link.data(7, INIT);
    const init = await link.json(7, (m) => m.id === 1);
    expect((init.result as { serverInfo: { name: string } }).serverInfo.name).toBe('echo');
    link.data(7, INITIALIZED);
    link.data(7, call(2, 'echo', { text: 'hello through the tunnel' }));
    expect(text(await link.json(7, (m) => m.id === 2))).toBe('hello through the tunnel');
    link.data(7, call(3, 'whoami'));
    expect(text(await link.json(7, (m) => m.id === 3))).toBe('spiffe://example.org/agent/support');
    expect(connector.links()[0]?.sessions).toBe(1);
  });

  it('a real MCP server from npm (server-everything) works through the link', async () => {
    const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
    const { harness } = await started({}, {}, { everything: { command: process.execPath, args: [everything, 'stdio'] } });
    const link = await welcomed(harness);
    link.open(1, 'everything');
    await link.frame((f) => f.type === FrameType.OPEN_OK);
    link.data(1, INIT);
    const init = await link.json(1, (m) => m.id === 1, 20_000);
    expect((init.result as { serverInfo: { name: string } }).serverInfo.name).toMatch(/everything/);
    link.data(1, INITIALIZED);
    link.data(1, { jsonrpc: '2.0', id: 2, method: 'tools/list' });
    const list = await link.json(1, (m) => m.id === 2, 20_000);
    expect((list.result as { tools: { name: string }[] }).tools.map((t) => t.name)).toContain('echo');
    link.data(1, call(3, 'echo', { message: 'from npm' }));
    expect(text(await link.json(1, (m) => m.id === 3, 20_000))).toMatch(/from npm/);
  });

  it("forwards a stdio backend's messages as the bytes it wrote, and drops lines that are not JSON-RPC", async () => {
    const { harness, logs } = await started({}, {}, { raw: { command: process.execPath, args: [RAW_LINES] } });
    const link = await welcomed(harness);
    link.open(3, 'raw');
    await link.frame((f) => f.type === FrameType.OPEN_OK && f.sessionId === 3);
    link.data(3, { jsonrpc: '2.0', id: 9, method: 'ping' });
    const reply = (await link.frame(isData(3))) as Extract<Frame, { type: 0x20 }>;
    expect(reply.data.toString('utf8')).toBe('{ "result" : { "method" : "ping", "é" : "ü" }, "id" : 9, "jsonrpc" : "2.0" }');
    link.data(3, { jsonrpc: '2.0', id: 'next', method: 'tools/list' });
    await link.json(3, (m) => m.id === 'next');
    // Only the two responses crossed the link; each dropped line was logged.
    expect(link.frames.filter(isData(3))).toHaveLength(2);
    expect(logs.entries.filter((e) => e.msg === 'backend transport error' && e.obj.sessionId === 3)).toHaveLength(4);
  });

  it('passes compact messages to a stdio server as the bytes received, and re-frames one with line breaks between tokens as one line', async () => {
    const { harness } = await started();
    await openSession(harness, 1);
    const link = await harness.link(1);
    // Compact (the raw path) and pretty-printed (CR/LF between tokens: parsed and re-serialised).
    link.data(1, '{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"echo","arguments":{"text":"compact é"}}}');
    link.data(1, JSON.stringify({ ...call(0, 'echo', { text: 'pretty' }), id: 'p' }, null, 2).replaceAll('\n', '\r\n'));
    link.data(1, '  {"jsonrpc":"2.0","id":"w","method":"tools/call","params":{"name":"echo","arguments":{"text":"leading space"}}}');
    expect(text(await link.json(1, (m) => m.id === 'c'))).toBe('compact é');
    expect(text(await link.json(1, (m) => m.id === 'p'))).toBe('pretty');
    expect(text(await link.json(1, (m) => m.id === 'w'))).toBe('leading space');
  });

  it('CLOSE from the relay kills the backend process', async () => {
    const { harness } = await started();
    await openSession(harness, 1);
    const link = await harness.link(1);
    link.data(1, call(2, 'pid'));
    const pid = Number(text(await link.json(1, (m) => m.id === 2)));
    expect(alive(pid)).toBe(true);
    link.closeSession(1);
    await until(() => !alive(pid), 8000, 'backend process to exit');
  });

  it('a backend that exits ends its session with CLOSE 4502; its stderr is in the log', async () => {
    const { harness, logs } = await started();
    await openSession(harness, 1);
    const link = await harness.link(1);
    link.data(1, call(2, 'exit'));
    const close = (await link.frame((f) => f.type === FrameType.CLOSE && f.sessionId === 1, 8000)) as Extract<Frame, { type: 0x30 }>;
    expect(close.payload.code).toBe(CloseCode.BACKEND_FAILED);
    expect(close.payload.reason).toMatch(/exited with code 3/);
    const lines = logs.entries.filter((e) => e.msg === 'backend stderr').map((e) => e.obj);
    expect(lines).toContainEqual(expect.objectContaining({ line: 'exiting on request', sessionId: 1, server: 'echo' }));
    const exit = logs.entries.find((e) => e.msg === 'backend process exited');
    expect(exit?.level).toBe('warn');
    expect(exit?.obj).toMatchObject({ exitCode: 3, stderrTail: expect.arrayContaining(['exiting on request']) });
  });

  it('a backend that dies at start ends the session with 4502; one that cannot spawn gets OPEN_FAIL 4502', async () => {
    // A command that exists when the connector starts (it checks) and is gone by the session.
    const bin = await mkdtemp(join(tmpdir(), 'sb-missing-'));
    const vanishing = join(bin, 'mcp-server');
    await writeFile(vanishing, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    cleanup.push(() => rm(bin, { recursive: true, force: true }));
    const { harness } = await started({}, {}, { broken: { command: process.execPath, args: [EXIT_AT_ONCE] }, missing: { command: vanishing } });
    await rm(vanishing);
    const link = await welcomed(harness);
    link.open(1, 'broken');
    const close = (await link.frame((f) => f.type === FrameType.CLOSE && f.sessionId === 1, 8000)) as Extract<Frame, { type: 0x30 }>;
    expect(close.payload.code).toBe(CloseCode.BACKEND_FAILED);
    link.open(2, 'missing');
    const fail = (await link.frame((f) => f.type === FrameType.OPEN_FAIL && f.sessionId === 2)) as Extract<Frame, { type: 0x12 }>;
    expect(fail.payload.code).toBe(CloseCode.BACKEND_FAILED);
    expect(fail.payload.reason).toBe('backend missing failed to start');
  });

  it('a command that cannot run is refused at start, naming the server and the path', async () => {
    const s = await setup();
    cleanup.push(() => s.harness.close());
    const start = (servers: Record<string, unknown>) =>
      startConnector(parseConnectorConfig({ relays: [s.harness.url], identity: s.identity, servers }), fast).then(
        async (c) => {
          await c.close({ drainTimeoutMs: 0 });
          return 'started';
        },
        (e: { code?: string; message: string }) => `${e.code}: ${e.message}`,
      );
    expect(await start({ crm: { command: '/nonexistent/mcp-server' } })).toBe('CONNECTOR_ERR_CONFIG_INVALID: config: servers.crm.command: /nonexistent/mcp-server does not exist');
    expect(await start({ crm: { command: 'no-such-mcp-server', env: { PATH: '/usr/bin:/bin' } } })).toBe(
      'CONNECTOR_ERR_CONFIG_INVALID: config: servers.crm.command: "no-such-mcp-server" is not found on the PATH the server gets (/usr/bin:/bin); give its full path, or set servers.crm.env.PATH',
    );
    expect(await start({ crm: { command: 'node', env: { PATH: dirname(process.execPath) } } })).toBe('started');
  });

  it('OPEN for a server not served on the link gets OPEN_FAIL 4502; a reused session id is a protocol error', async () => {
    const { harness, connector } = await started();
    await connector.ready();
    const link = await welcomed(harness);
    link.open(5, 'nope');
    const fail = (await link.frame((f) => f.type === FrameType.OPEN_FAIL && f.sessionId === 5)) as Extract<Frame, { type: 0x12 }>;
    expect(fail.payload).toEqual({ code: CloseCode.BACKEND_FAILED, reason: 'server nope is not served on this link' });
    link.open(5, 'echo');
    expect((await link.whenClosed()).code).toBe(CloseCode.PROTOCOL_ERROR);
  });

  it('sessions are independent: closing one leaves the other working', async () => {
    const { harness } = await started();
    await openSession(harness, 1);
    await openSession(harness, 2);
    const link = await harness.link(1);
    link.closeSession(1);
    link.data(2, call(5, 'echo', { text: 'still here' }));
    expect(text(await link.json(2, (m) => m.id === 5))).toBe('still here');
  });
});

describe('flow control', () => {
  it('never sends a session more than its credit, and resumes when WINDOW arrives', async () => {
    const window = 1000;
    const { harness } = await started({ welcome: (h) => ({ accepted: h.servers, window }) });
    const link = await welcomed(harness);
    link.open(1, 'echo');
    await link.frame((f) => f.type === FrameType.OPEN_OK);
    link.data(1, INIT);
    const init = link.frames.length;
    await link.json(1, (m) => m.id === 1);
    link.data(1, INITIALIZED);
    link.data(1, call(2, 'many', { count: 20, bytes: 200 }));
    await wait(400);
    const sent = link.frames.filter((f, i) => i >= init && isData(1)(f)) as Extract<Frame, { type: 0x20 }>[];
    // Each DATA went out while the credit was positive: the bytes before it are below the window.
    let before = 0;
    for (const f of sent) {
      expect(before).toBeLessThan(window);
      before += f.data.length;
    }
    expect(before).toBeGreaterThanOrEqual(window);
    expect(sent.some((f) => f.data.toString().includes('"id":2'))).toBe(false);
    link.window(1, 1_000_000);
    const result = await link.json(1, (m) => m.id === 2);
    expect(text(result)).toBe('done');
    const all = link.frames.filter((f) => isData(1)(f) && f.data.toString().includes('notifications/message'));
    expect(all).toHaveLength(20);
  });

  it('returns input credit with WINDOW only after handing the bytes to the backend', async () => {
    const window = 1000;
    const { harness } = await started({ welcome: (h) => ({ accepted: h.servers, window }) });
    const link = await welcomed(harness);
    link.open(1, 'echo');
    await link.frame((f) => f.type === FrameType.OPEN_OK);
    let sent = link.data(1, INIT);
    await link.json(1, (m) => m.id === 1);
    sent += link.data(1, INITIALIZED);
    sent += link.data(1, call(2, 'echo', { text: 'a' }));
    await link.json(1, (m) => m.id === 2);
    const w = (await link.frame((f) => f.type === FrameType.WINDOW && f.sessionId === 1)) as Extract<Frame, { type: 0x21 }>;
    expect(w.increment).toBeGreaterThanOrEqual(window / 4);
    expect(w.increment).toBeLessThanOrEqual(sent);
  });

  it('closes a session with 1008 when the relay sends beyond the window', async () => {
    const { harness } = await started({ welcome: (h) => ({ accepted: h.servers, window: 1000 }) });
    const link = await welcomed(harness);
    // Before OPEN_OK nothing is handed on, so no credit can come back in between.
    link.open(1, 'echo');
    link.data(1, { jsonrpc: '2.0', method: 'notifications/x', params: { pad: 'p'.repeat(1200) } });
    link.data(1, { jsonrpc: '2.0', method: 'notifications/x', params: { pad: 'p'.repeat(10) } });
    const close = (await link.frame((f) => f.type === FrameType.CLOSE && f.sessionId === 1)) as Extract<Frame, { type: 0x30 }>;
    expect(close.payload.code).toBe(CloseCode.POLICY_VIOLATION);
  });

  it('closes a session whose reader stalls with 4508 once its output buffer is full, and kills the backend', async () => {
    const { harness } = await started({ welcome: (h) => ({ accepted: h.servers, window: 4000 }) }, { outputBufferBytes: 3000 });
    await openSession(harness, 1);
    const link = await harness.link(1);
    link.data(1, call(2, 'pid'));
    const pid = Number(text(await link.json(1, (m) => m.id === 2)));
    // The first 5000-byte reply still fits the credit left; the second must wait, and alone exceeds the bound.
    link.data(1, call(3, 'big', { bytes: 5000 }));
    await link.json(1, (m) => m.id === 3);
    link.data(1, call(4, 'big', { bytes: 5000 }));
    const close = (await link.frame((f) => f.type === FrameType.CLOSE && f.sessionId === 1, 8000)) as Extract<Frame, { type: 0x30 }>;
    expect(close.payload.code).toBe(CloseCode.SESSION_OVERFLOW);
    expect(link.frames.some((f) => isData(1)(f) && f.data.toString().includes('"id":4'))).toBe(false);
    await until(() => !alive(pid), 8000, 'backend process to exit');
  });

  it('pauses the backend while the relay withholds credit: output stays bounded and nothing is lost', async () => {
    // 400 × ~2 KB = ~800 KB of output against a 1 KB window and a 256 KiB bound: without pausing
    // the backend's stdout, the buffer would overflow (4508).
    const { harness, connector } = await started({ welcome: (h) => ({ accepted: h.servers, window: 1000 }) }, { outputBufferBytes: 256 * 1024 });
    await openSession(harness, 1);
    const link = await harness.link(1);
    link.window(1, 1000);
    link.data(1, call(2, 'many', { count: 400, bytes: 2000 }));
    await wait(1500);
    expect(link.frames.some((f) => f.type === FrameType.CLOSE)).toBe(false);
    expect(connector.links()[0]?.sessions).toBe(1);
    link.window(1, 10_000_000);
    expect(text(await link.json(1, (m) => m.id === 2, 20_000))).toBe('done');
    expect(link.frames.filter((f) => isData(1)(f) && f.data.toString().includes('notifications/message'))).toHaveLength(400);
  });
});

describe('link liveness and reconnects', () => {
  it('reconnects by itself after the relay drops the link, and serves again', async () => {
    const { harness, connector } = await started();
    await connector.ready();
    (await harness.link(1)).drop();
    const second = await harness.link(2);
    await second.frame((f) => f.type === FrameType.HELLO);
    await until(() => connector.links()[0]?.state === 'up' && connector.links()[0]?.linkId === 'link-2');
    expect(connector.links()[0]?.reconnects).toBe(1);
    second.open(1, 'echo');
    await second.frame((f) => f.type === FrameType.OPEN_OK);
    // The redial resumed the TLS session, and the relay still knew who we are.
    expect(harness.resumed).toEqual([false, true]);
    expect(second.peer.toString()).toBe(CONNECTOR_ID);
  });

  it('pings, and drops and redials a link that went silent', async () => {
    const { harness, connector } = await started({}, { timing: { pingIntervalMs: 40, silenceTimeoutMs: 200 } });
    await connector.ready();
    const first = await harness.link(1);
    await wait(150);
    expect(first.closed).toBeUndefined();
    first.freeze();
    const second = await harness.link(2, 5000);
    await second.frame((f) => f.type === FrameType.HELLO);
    expect(connector.links()[0]?.reconnects).toBeGreaterThanOrEqual(1);
  });

  it('closes the link with 1002 on a text frame and redials', async () => {
    const { harness, connector } = await started();
    await connector.ready();
    const first = await harness.link(1);
    first.sendText('{"hello":1}');
    expect((await first.whenClosed()).code).toBe(CloseCode.PROTOCOL_ERROR);
    await harness.link(2);
  });

  it('dials a new link when the relay sends GOAWAY, while the old one drains its sessions', async () => {
    const { harness, connector } = await started();
    await openSession(harness, 1);
    const first = await harness.link(1);
    first.goaway();
    const second = await harness.link(2);
    await second.frame((f) => f.type === FrameType.HELLO);
    first.data(1, call(9, 'echo', { text: 'draining' }));
    expect(text(await first.json(1, (m) => m.id === 9))).toBe('draining');
    await until(() => connector.links()[0]?.linkId === 'link-2');
  });

  it('treats a 403 after the relay accepted us once as transient and reconnects', async () => {
    const { harness, connector } = await started({ upgradeStatus: (n) => (n === 2 ? 403 : undefined) });
    await connector.ready();
    (await harness.link(1)).drop();
    await harness.link(2);
    expect(harness.rejectedUpgrades).toEqual([403]);
    expect(harness.connections).toBe(3);
  });
});

describe('high availability', () => {
  it('keeps one link per relay and registers every server on each', async () => {
    const a = await setup();
    const b = await setup();
    cleanup.push(() => a.harness.close(), () => b.harness.close());
    const connector = await startConnector(echoConfig([a.harness.url, b.harness.url], a.identity), fast);
    cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
    for (const h of [a.harness, b.harness]) {
      const hello = (await (await h.link(1)).frame((f) => f.type === FrameType.HELLO)) as Extract<Frame, { type: 0x01 }>;
      expect(hello.payload.servers).toEqual(['echo']);
    }
    await until(() => connector.links().every((l) => l.state === 'up'));
    expect(connector.links().map((l) => l.relay)).toEqual([a.harness.url, b.harness.url]);
  });
});
