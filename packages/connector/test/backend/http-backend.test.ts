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
async function httpMcpServer(opts: { json?: boolean } = {}): Promise<HttpMcp> {
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
      enableJsonResponse: opts.json === true,
      onsessioninitialized: (id) => void sessions.set(id, transport),
      onsessionclosed: (id) => {
        state.closedSessions.push(id);
        sessions.delete(id);
      },
    });
    const server = new Server({ name: 'http-echo', version: '1.0.0' }, { capabilities: { tools: {}, logging: {} } });
    server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [{ name: 'echo', inputSchema: { type: 'object' } }] }));
    server.setRequestHandler(CallToolRequestSchema, async (r) => {
      // notify: a message the server sends unasked (no related request): it travels on the GET stream.
      if (r.params.name === 'notify') await server.notification({ method: 'notifications/message', params: { level: 'info', data: 'unasked' } });
      return { content: [{ type: 'text', text: String(r.params.arguments?.text ?? '') }] };
    });
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
  it('reads JSON answers and SSE answers alike, and the server\'s own GET stream, with the session id and protocol version on each request', async () => {
    for (const json of [true, false]) {
      const mcp = await httpMcpServer({ json });
      const got: Record<string, unknown>[] = [];
      const raw: (string | undefined)[] = [];
      const backend = new HttpBackend(
        { url: mcp.url, headers: {} } as never,
        { agent: 'spiffe://example.org/agent/a', server: 'tickets' } as never,
        { message: (m, j) => void (got.push(m as never), raw.push(j)), written: () => undefined, ended: (why) => void got.push({ ended: why }) },
        memoryLogger(),
      );
      cleanup.push(() => backend.close());
      await backend.start();
      backend.send(INIT as never, 1);
      await until(() => got.length === 1, 5000, 'initialize result');
      expect(raw[0]).toBe(JSON.stringify(got[0])); // forwarded as the server's bytes, not re-serialised
      backend.send(INITIALIZED as never, 1);
      await until(() => mcp.requests.some((q) => q.method === 'GET'), 5000, 'the GET stream');
      await new Promise((r) => setTimeout(r, 50));
      expect(backend.sendRaw(Buffer.from(JSON.stringify(call(2, 'notify', { text: `json=${json}` }))))).toBe(true);
      await until(() => got.some((m) => m.id === 2) && got.some((m) => m.method === 'notifications/message'), 5000, 'the answer and the unasked message');
      expect(got.find((m) => m.id === 2)?.result).toEqual({ content: [{ type: 'text', text: `json=${json}` }] });
      expect(got.find((m) => m.method === 'notifications/message')?.params).toEqual({ level: 'info', data: 'unasked' });
      const later = mcp.requests.slice(1);
      expect(later.every((q) => typeof q.headers['mcp-session-id'] === 'string' && q.headers['mcp-protocol-version'] === '2025-06-18')).toBe(true);
      expect(later.find((q) => q.method === 'GET')?.headers.accept).toBe('text/event-stream');
      expect(got.some((m) => 'ended' in m)).toBe(false);
    }
  });

  it('resumes an SSE answer cut short: a GET with Last-Event-ID brings the rest, and the session goes on', async () => {
    // A hand-written Streamable-HTTP server: the tools/call answer's stream sends a progress event
    // with an id, then the connection is cut; the GET with Last-Event-ID carries the result.
    const seen: { method: string; lastEventId: string | undefined; session: string | undefined }[] = [];
    const srv = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', lastEventId: req.headers['last-event-id'] as string | undefined, session: req.headers['mcp-session-id'] as string | undefined });
        if (req.method === 'GET') {
          if (req.headers['last-event-id'] !== 'ev-1') return void res.writeHead(405).end();
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(`id: ev-2\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: 'resumed' }] } })}\n\n`);
          return;
        }
        if (req.method === 'DELETE') return void res.writeHead(200).end();
        const m = JSON.parse(body) as { id?: number; method: string };
        if (m.method === 'initialize') {
          res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'S1' });
          return void res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2025-06-18', capabilities: {}, serverInfo: { name: 'hand', version: '1' } } }));
        }
        if (m.id === undefined) return void res.writeHead(202).end();
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`id: ev-1\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: 1 } })}\n\n`, () => setTimeout(() => res.socket?.destroy(), 20));
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanup.push(async () => {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    });
    const got: Record<string, unknown>[] = [];
    const backend = new HttpBackend(
      { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/mcp`, headers: {} } as never,
      { agent: 'spiffe://example.org/agent/a', server: 'tickets' } as never,
      { message: (m) => void got.push(m as never), written: () => undefined, ended: (why) => void got.push({ ended: why }) },
      memoryLogger(),
    );
    cleanup.push(() => backend.close());
    backend.send(INIT as never, 1);
    await until(() => got.length === 1, 5000, 'initialize result');
    backend.send(call(2, 'slow') as never, 1);
    await until(() => got.some((m) => m.id === 2), 8000, 'the resumed result');
    expect(got.map((m) => m.method ?? m.id ?? m.ended)).toEqual([1, 'notifications/progress', 2]);
    expect(got[2]?.result).toEqual({ content: [{ type: 'text', text: 'resumed' }] });
    expect(seen.find((q) => q.method === 'GET' && q.lastEventId === 'ev-1')?.session).toBe('S1');
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
