import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { CloseCode, encodeControl, FrameType, type Frame } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpBackend } from '../../src/backend/http-backend.js';
import { parseConnectorConfig, startConnector } from '../../src/index.js';
import { until } from '../harness/relay-harness.js';
import { call, INIT, INITIALIZED, memoryLogger, setup } from '../harness/setup.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

interface HttpMcp {
  url: string;
  requests: { method: string; headers: IncomingHttpHeaders }[];
  closedSessions: string[];
}

/** A Streamable-HTTP MCP server on loopback, one SDK Server per MCP session. */
async function httpMcpServer(): Promise<HttpMcp> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const state: HttpMcp = { url: '', requests: [], closedSessions: [] };
  const http: HttpServer = createServer((req, res) => {
    state.requests.push({ method: req.method ?? '', headers: req.headers });
    const sid = req.headers['mcp-session-id'];
    const existing = typeof sid === 'string' ? sessions.get(sid) : undefined;
    if (existing) return void existing.handleRequest(req, res);
    if (req.method !== 'POST' || sid) return void res.writeHead(404).end();
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (id) => void sessions.set(id, transport),
      onsessionclosed: (id) => {
        state.closedSessions.push(id);
        sessions.delete(id);
      },
    });
    const server = new Server({ name: 'http-echo', version: '1.0.0' }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [{ name: 'echo', inputSchema: { type: 'object' } }] }));
    server.setRequestHandler(CallToolRequestSchema, async (r) => ({ content: [{ type: 'text', text: String(r.params.arguments?.text ?? '') }] }));
    void server.connect(transport).then(() => transport.handleRequest(req, res));
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  cleanup.push(async () => {
    for (const t of sessions.values()) await t.close();
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });
  return state;
}

describe('Streamable-HTTP backend', () => {
  it('a busy session does not trip the "possible EventTarget memory leak" warning: its abort signal has no listener cap', async () => {
    const mcp = await httpMcpServer();
    const got: unknown[] = [];
    const backend = new HttpBackend(
      { url: mcp.url, headers: {} } as never,
      { agent: 'spiffe://example.org/agent/a', server: 'tickets' } as never,
      { message: (m) => void got.push(m), written: () => undefined, ended: () => undefined },
      memoryLogger(),
    );
    cleanup.push(() => backend.close());
    await backend.start();
    // fetch adds one abort listener per request to this signal and drops it only when the request
    // is garbage-collected; with Node's default cap (1,500) a busy session printed a warning per call.
    const signal = (backend as unknown as { transport: { _abortController?: AbortController } }).transport._abortController?.signal;
    expect(signal).toBeDefined();
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    const noop = (): void => undefined;
    const listeners = Array.from({ length: 2000 }, () => () => noop());
    try {
      for (const l of listeners) (signal as AbortSignal).addEventListener('abort', l);
      await new Promise((r) => setTimeout(r, 20));
    } finally {
      for (const l of listeners) (signal as AbortSignal).removeEventListener('abort', l);
      process.off('warning', onWarning);
    }
    expect(warnings).toEqual([]);
    backend.send(INIT as never, 1);
    await until(() => got.length === 1, 5000, 'initialize result');
  });

  it('one MCP session per agent session: initialize, tools/call, protocol version header, JWT-SVID, DELETE on close', async () => {
    const mcp = await httpMcpServer();
    const { harness, identity } = await setup();
    cleanup.push(() => harness.close());
    const connector = await startConnector(parseConnectorConfig({ relays: [harness.url], identity, servers: { tickets: { url: mcp.url, headers: { 'x-api-key': 'secret' } } } }), { drainTimeoutMs: 0 });
    cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
    await connector.ready();
    const link = await harness.link(1);
    link.send(encodeControl(FrameType.OPEN, 1, { server: 'tickets', agent: 'spiffe://example.org/agent/a', jwtSvid: 'eyJ.test.jwt' }));
    await link.frame((f) => f.type === FrameType.OPEN_OK);
    link.data(1, INIT);
    const init = await link.json(1, (m) => m.id === 1);
    expect((init.result as { serverInfo: { name: string } }).serverInfo.name).toBe('http-echo');
    link.data(1, INITIALIZED);
    link.data(1, call(2, 'echo', { text: 'over http' }));
    const r = await link.json(1, (m) => m.id === 2);
    expect((r.result as { content: { text: string }[] }).content[0]?.text).toBe('over http');
    const posts = mcp.requests.filter((q) => q.method === 'POST');
    expect(posts.every((q) => q.headers.authorization === 'Bearer eyJ.test.jwt' && q.headers['x-api-key'] === 'secret')).toBe(true);
    expect(posts.at(-1)?.headers['mcp-protocol-version']).toBe('2025-06-18');

    // A second agent session is a second MCP session.
    link.open(2, 'tickets');
    await link.frame((f) => f.type === FrameType.OPEN_OK && f.sessionId === 2);
    link.data(2, INIT);
    await link.json(2, (m) => m.id === 1);
    link.data(2, INITIALIZED);
    await until(() => new Set(mcp.requests.map((q) => q.headers['mcp-session-id']).filter(Boolean)).size === 2, 5000, 'a second MCP session');

    link.closeSession(1);
    await until(() => mcp.closedSessions.length === 1, 5000, 'DELETE of the MCP session');
    expect(mcp.requests.some((q) => q.method === 'DELETE')).toBe(true);
  });

  it('an unreachable backend ends the session with 4502 on the first message', async () => {
    const { harness, identity } = await setup();
    cleanup.push(() => harness.close());
    const connector = await startConnector(parseConnectorConfig({ relays: [harness.url], identity, servers: { down: { url: 'http://127.0.0.1:1/mcp' } } }), { drainTimeoutMs: 0 });
    cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
    await connector.ready();
    const link = await harness.link(1);
    link.open(1, 'down');
    await link.frame((f) => f.type === FrameType.OPEN_OK);
    link.data(1, INIT);
    const close = (await link.frame((f) => f.type === FrameType.CLOSE && f.sessionId === 1)) as Extract<Frame, { type: 0x30 }>;
    expect(close.payload.code).toBe(CloseCode.BACKEND_FAILED);
    expect(close.payload.reason).toMatch(/^backend request failed/);
  });
});
