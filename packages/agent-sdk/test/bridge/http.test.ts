import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { parseLoopbackListen, startHttpBridge } from '../../src/index.js';
import { harness } from '../harness/agent-harness.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

describe('agent http bridge', () => {
  it('serves a loopback Streamable-HTTP endpoint; each MCP session is one relay session', async () => {
    const { relay, identity } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const bridge = await startHttpBridge({ listen: '127.0.0.1:0', relay: relay.url, server: 'crm', identity });
    cleanup.push(() => bridge.close());
    expect(bridge.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const clients = [new Client({ name: 'http-client', version: '1' }), new Client({ name: 'http-client', version: '2' })];
    for (const c of clients) {
      await c.connect(new StreamableHTTPClientTransport(new URL(bridge.url)));
      cleanup.push(() => c.close());
    }
    const r = await clients[0]!.callTool({ name: 'echo', arguments: { text: 'over http' } });
    expect(r.content).toEqual([{ type: 'text', text: 'over http' }]);
    expect((await clients[1]!.listTools()).tools).toHaveLength(2);
    expect(bridge.sessions()).toBe(2);
    expect(relay.upgrades).toHaveLength(2);
  });

  it('refuses foreign Host and Origin headers (DNS rebinding, cross-site pages)', async () => {
    const { relay, identity } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const bridge = await startHttpBridge({ listen: '127.0.0.1:0', relay: relay.url, server: 'crm', identity });
    cleanup.push(() => bridge.close());
    const port = new URL(bridge.url).port;
    const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
    const { request } = await import('node:http');
    const post = (headers: Record<string, string>): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/mcp', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end(init);
      });
    expect(await post({ host: `evil.example:${port}` })).toBe(403);
    expect(await post({ host: `127.0.0.1:${port}`, origin: 'https://evil.example' })).toBe(403);
    expect(relay.upgrades).toHaveLength(0);
  });

  it('maps a relay refusal to the HTTP status of the initialize request', async () => {
    const { relay, identity } = await harness({ refuse: () => ({ status: 503, body: 'no connector\n' }) });
    cleanup.push(() => relay.close());
    const bridge = await startHttpBridge({ listen: 'localhost:0', relay: relay.url, server: 'crm', identity });
    cleanup.push(() => bridge.close());
    const c = new Client({ name: 'x', version: '1' });
    await expect(c.connect(new StreamableHTTPClientTransport(new URL(bridge.url)))).rejects.toThrow(/AGENT_ERR_NO_CONNECTOR/);
  });

  it.each(['0.0.0.0:7000', '192.168.1.2:7000', '[::]:7000', 'example.org:7000', '7000'])('refuses to listen on %s', (listen) => {
    expect(() => parseLoopbackListen(listen)).toThrow(TypeError);
  });
});
