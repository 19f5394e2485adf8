// The tunnel end to end: the real relay and connector, real MCP servers from npm
// behind the connector, the real MCP SDK Client as the agent — through the agent SDK and through
// `switchboard agent stdio`.
import { once } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { connect } from '@switchboard/agent-sdk';
import { createWorld, CLI, CRASH, EVERYTHING, FILESYSTEM, TD, type World } from './world.js';

const POLICY = `trustDomain: ${TD}
servers:
  everything: { connectors: [spiffe://${TD}/connector/main] }
  files:      { connectors: [spiffe://${TD}/connector/main] }
  crash:      { connectors: [spiffe://${TD}/connector/main] }
  reserved:   { connectors: [spiffe://${TD}/connector/other] }
rules:
  - id: support-everything
    agents: [spiffe://${TD}/agent/support/*]
    servers: [everything, crash, reserved]
    tools: { allow: [echo, get-sum, crash] }
  - id: support-reads-files
    agents: [spiffe://${TD}/agent/support/*]
    servers: [files]
    tools: { allow: ["read_*", "list_*"], deny: ["read_media_file"] }
`;

let w: World;
let files: string;
let agentIds: string;
let agent2Ids: string;
let outsiderIds: string;

beforeAll(async () => {
  w = await createWorld(POLICY);
  files = await mkdtemp(join(tmpdir(), 'sb-e2e-files-'));
  await writeFile(join(files, 'hello.txt'), 'hello from the private side\n');
  agentIds = await w.identity('agent', `spiffe://${TD}/agent/support/alice`);
  agent2Ids = await w.identity('agent2', `spiffe://${TD}/agent/support/bob`);
  outsiderIds = await w.identity('outsider', `spiffe://${TD}/agent/sales/eve`);
  await w.startConnector({
    everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] },
    files: { command: process.execPath, args: [FILESYSTEM, files], filesystem: { write: [files] } },
    crash: { command: process.execPath, args: [CRASH] },
    reserved: { command: process.execPath, args: [EVERYTHING, 'stdio'] },
  });
  await w.connector!.ready();
}, 60_000);

afterAll(async () => {
  await w?.close();
});

async function agent(server: string, ids = agentIds): Promise<Client> {
  return connect({ relay: w.relay.url, server, identity: ids });
}

function errorOf(p: Promise<unknown>): Promise<{ code?: number; message: string }> {
  return p.then(
    (r) => {
      throw new Error(`expected an error, got ${JSON.stringify(r)}`);
    },
    (e: { code?: number; message: string }) => e,
  );
}

describe('through the agent SDK', () => {
  it('tools/list is filtered to exactly what the policy grants', async () => {
    const c = await agent('files');
    const names = (await c.listTools()).tools.map((t) => t.name).sort();
    // server-filesystem has 14 tools; the rule allows read_* and list_* and denies read_media_file.
    expect(names).toEqual(['list_allowed_directories', 'list_directory', 'list_directory_with_sizes', 'read_file', 'read_multiple_files', 'read_text_file']);
    await c.close();
    const e = await agent('everything');
    expect((await e.listTools()).tools.map((t) => t.name).sort()).toEqual(['echo', 'get-sum']);
    await e.close();
  });

  it('an allowed call returns the real server result', async () => {
    const c = await agent('everything');
    expect(await c.callTool({ name: 'echo', arguments: { message: 'hi' } })).toEqual({ content: [{ type: 'text', text: 'Echo: hi' }] });
    const f = await agent('files');
    const r = await f.callTool({ name: 'read_text_file', arguments: { path: join(files, 'hello.txt') } });
    expect(r.content).toEqual([{ type: 'text', text: 'hello from the private side\n' }]);
    await c.close();
    await f.close();
  });

  it('a denied tool and an unknown tool get identical errors, and neither reaches the server', async () => {
    const f = await agent('files');
    const target = join(files, 'written.txt');
    const denied = await errorOf(f.callTool({ name: 'write_file', arguments: { path: target, content: 'x' } }));
    const unknown = await errorOf(f.callTool({ name: 'no_such_tool', arguments: {} }));
    expect(denied.code).toBe(-32602);
    expect(unknown.code).toBe(-32602);
    expect(denied.message.replace('write_file', 'NAME')).toBe(unknown.message.replace('no_such_tool', 'NAME'));
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    await f.close();
    // Deny records are appended with the next batch (a few ms): poll, bounded.
    let audit = '';
    for (let i = 0; i < 50 && !audit.includes('"write_file"'); i++) {
      audit = await readFile(w.auditPath, 'utf8');
      if (!audit.includes('"write_file"')) await new Promise((r) => setTimeout(r, 100));
    }
    const deny = audit.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((r) => r.type === 'request' && r.name === 'write_file');
    // No rule allows write_file here: default deny, no deciding rule.
    expect(deny).toMatchObject({ decision: 'deny', ruleId: null, method: 'tools/call' });
  });

  it('colliding request ids across two agents stay isolated', async () => {
    // Both SDK clients number their requests from 0, so ids collide on the relay.
    const [a, b] = await Promise.all([agent('everything'), agent('everything', agent2Ids)]);
    const calls = [];
    for (let i = 0; i < 20; i++) {
      calls.push(a.callTool({ name: 'echo', arguments: { message: `a${i}` } }));
      calls.push(b.callTool({ name: 'echo', arguments: { message: `b${i}` } }));
    }
    const results = (await Promise.all(calls)).map((r) => (r.content as { text: string }[])[0]!.text);
    for (let i = 0; i < 20; i++) {
      expect(results[2 * i]).toBe(`Echo: a${i}`);
      expect(results[2 * i + 1]).toBe(`Echo: b${i}`);
    }
    await a.close();
    await b.close();
  });

  it('a backend process that dies ends its session with an error to the agent', async () => {
    const c = await agent('crash');
    const closed = new Promise<void>((r) => {
      c.onclose = () => r();
    });
    const e = await errorOf(c.callTool({ name: 'crash', arguments: {} }));
    expect(e.message).toMatch(/backend|closed|4502/i);
    await closed;
  });

  it('an identity without a grant is refused with 403 before the upgrade', async () => {
    await expect(agent('everything', outsiderIds)).rejects.toMatchObject({ code: 'AGENT_ERR_ACCESS_DENIED' });
    // A server that does not exist looks the same as one that is forbidden.
    await expect(agent('no-such-server')).rejects.toMatchObject({ code: 'AGENT_ERR_ACCESS_DENIED' });
  });
});

// A raw WebSocket agent, to send what the SDK never would.
async function rawAgent(server: string, ids = agentIds): Promise<WebSocket> {
  const key = await readFile(join(ids, 'svid_key.pem'));
  const cert = await readFile(join(ids, 'svid.pem'));
  const ca = await readFile(join(ids, 'bundle.pem'));
  const ws = new WebSocket(`${w.relay.url}/v1/agent/${server}`, 'mcp', { key, cert, ca, checkServerIdentity: () => undefined });
  await once(ws, 'open');
  return ws;
}

function nextMessage(ws: WebSocket): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message within 5 s')), 5000);
    ws.once('message', (d) => {
      clearTimeout(t);
      resolve(JSON.parse(d.toString()));
    });
  });
}

function closeOf(ws: WebSocket): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('not closed within 5 s')), 5000);
    ws.once('close', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

describe('strict parsing at the relay', () => {
  it('a batch is refused with -32600 and nothing is forwarded', async () => {
    const ws = await rawAgent('everything');
    ws.send(JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }]));
    expect(await nextMessage(ws)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600 } });
    // The session goes on: a proper request still works.
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }));
    expect(await nextMessage(ws)).toMatchObject({ id: 2, result: { serverInfo: expect.any(Object) } });
    ws.close();
  });

  it('an oversized message closes only its own session (1009); another on the same link keeps working', async () => {
    const other = await agent('everything');
    const ws = await rawAgent('everything');
    const closed = closeOf(ws);
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x'.repeat(2 * 1024 * 1024) } } }));
    expect(await closed).toBe(1009);
    expect(await other.callTool({ name: 'echo', arguments: { message: 'still here' } })).toEqual({ content: [{ type: 'text', text: 'Echo: still here' }] });
    await other.close();
  });

  it('a binary frame closes the session with 1003', async () => {
    const ws = await rawAgent('everything');
    const closed = closeOf(ws);
    ws.send(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping"}'), { binary: true });
    expect(await closed).toBe(1003);
  });
});

describe('who may connect, and where the refusal happens', () => {
  async function handshake(key: Buffer | undefined, cert: Buffer | undefined, ca: Buffer): Promise<'ok' | 'handshake-failed'> {
    const u = new URL(w.relay.url);
    return new Promise((resolve) => {
      const s = tls.connect({ host: u.hostname, port: Number(u.port), key, cert, ca, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
      s.once('secureConnect', () => {
        // In TLS 1.3 the server's verdict on our certificate arrives after the client finishes.
        s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        s.once('data', () => {
          s.destroy();
          resolve('ok');
        });
      });
      s.once('error', () => resolve('handshake-failed'));
      s.once('close', () => resolve('handshake-failed'));
      setTimeout(() => {
        s.destroy();
        resolve('handshake-failed');
      }, 5000);
    });
  }

  it('no client certificate → the TLS handshake fails', async () => {
    const ca = await readFile(join(agentIds, 'bundle.pem'));
    expect(await handshake(undefined, undefined, ca)).toBe('handshake-failed');
  });

  it('a certificate from a foreign CA → the TLS handshake fails', async () => {
    const { createTestCA } = await import('@switchboard/pki/testing');
    const foreign = await createTestCA({ trustDomain: TD });
    const svid = await foreign.issue(`spiffe://${TD}/agent/support/alice`);
    const ca = await readFile(join(agentIds, 'bundle.pem'));
    expect(await handshake(Buffer.from(svid.privateKeyPem()), Buffer.from(svid.certificatesPem()), ca)).toBe('handshake-failed');
  });

  it('an expired certificate → the TLS handshake fails', async () => {
    const svid = await w.ca.issue(`spiffe://${TD}/agent/support/alice`, { expired: true });
    const ca = await readFile(join(agentIds, 'bundle.pem'));
    expect(await handshake(Buffer.from(svid.privateKeyPem()), Buffer.from(svid.certificatesPem()), ca)).toBe('handshake-failed');
  });

  it('an agent certificate on the connector path → 403 before the upgrade', async () => {
    const key = await readFile(join(agentIds, 'svid_key.pem'));
    const cert = await readFile(join(agentIds, 'svid.pem'));
    const ca = await readFile(join(agentIds, 'bundle.pem'));
    const ws = new WebSocket(`${w.relay.url}/v1/connector`, 'switchboard.v1', { key, cert, ca, checkServerIdentity: () => undefined });
    ws.on('error', () => undefined);
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(res.statusCode).toBe(403);
    ws.terminate();
  });

  it('a connector cannot register a server it is not listed for', async () => {
    // The connector offered four servers; "reserved" is listed for connector/other only.
    const [link] = w.connector!.links();
    expect([...link!.accepted].sort()).toEqual(['crash', 'everything', 'files']);
    expect(link!.rejected.map((r) => r.server)).toEqual(['reserved']);
    // The agent may use "reserved", but nothing serves it: 503, not a session on the wrong connector.
    expect(await fetchAgentUpgrade('reserved')).toBe(503);
    await expect(agent('reserved')).rejects.toMatchObject({ code: 'AGENT_ERR_NO_CONNECTOR' });
  });
});

async function fetchAgentUpgrade(server: string): Promise<number> {
  const key = await readFile(join(agentIds, 'svid_key.pem'));
  const cert = await readFile(join(agentIds, 'svid.pem'));
  const ca = await readFile(join(agentIds, 'bundle.pem'));
  const ws = new WebSocket(`${w.relay.url}/v1/agent/${server}`, 'mcp', { key, cert, ca, checkServerIdentity: () => undefined });
  ws.on('error', () => undefined);
  return new Promise((resolve) => {
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => {
      resolve(101);
      ws.close();
    });
    ws.once('error', () => resolve(0));
  });
}

describe('through `switchboard agent stdio`', () => {
  it('an unmodified stdio MCP client gets the filtered tools and real results', async () => {
    const c = new Client({ name: 'stdio-client', version: '1.0.0' });
    await c.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, 'agent', 'stdio', '--relay', w.relay.url, '--server', 'everything', '--identity', agentIds],
        stderr: 'pipe',
      }),
    );
    expect((await c.listTools()).tools.map((t) => t.name).sort()).toEqual(['echo', 'get-sum']);
    expect(await c.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } })).toMatchObject({ content: [{ type: 'text', text: expect.stringContaining('42') }] });
    const denied = await errorOf(c.callTool({ name: 'get-env', arguments: {} }));
    expect(denied.code).toBe(-32602);
    await c.close();
  });
});

describe('relay restart', () => {
  it('the connector reconnects by itself and new sessions work', async () => {
    const port = Number(new URL(w.relay.url).port);
    await w.relay.close();
    await w.startRelay(port);
    const deadline = Date.now() + 20_000;
    let result: unknown;
    while (Date.now() < deadline) {
      try {
        const c = await agent('everything');
        result = await c.callTool({ name: 'echo', arguments: { message: 'back' } });
        await c.close();
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    expect(result).toEqual({ content: [{ type: 'text', text: 'Echo: back' }] });
  }, 30_000);
});
