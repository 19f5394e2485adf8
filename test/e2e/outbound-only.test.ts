// Outbound-only proof: the private host runs an MCP server on Streamable HTTP and the
// connector; a firewall there drops every inbound new connection. The agent still gets its tools
// through the relay, a direct connection from the agent to the MCP server fails, and `ss -ltn` on
// the private host shows no listener on a non-loopback address. Runs as root (CI); elsewhere it
// reports itself skipped with the reason.
import { type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { createTestCA } from '@switchboard/pki/testing';
import { createTopology, netnsUnavailable, type Topology } from './netns.js';
import { CLI, HTTP_SERVER } from './world.js';

const why = netnsUnavailable();
const TD = 'example.org';
const MCP_PORT = 3900;

function waitForLine(p: ChildProcess, re: RegExp, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms; got: ${buf.slice(-2000)}`)), ms);
    const on = (d: Buffer): void => {
      buf += d.toString();
      const m = buf.split('\n').find((l) => re.test(l));
      if (m) {
        clearTimeout(t);
        resolve(m);
      }
    };
    p.stdout?.on('data', on);
    p.stderr?.on('data', on);
    p.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`exited with ${code} before ${re}; output: ${buf.slice(-2000)}`));
    });
  });
}

describe.skipIf(why !== undefined)(`outbound-only proof in network namespaces${why ? ` — skipped: ${why}` : ''}`, () => {
  let topo: Topology;
  let dir: string;
  const procs: ChildProcess[] = [];

  beforeAll(async () => {
    topo = createTopology(String(process.pid % 10000));
    dir = await mkdtemp(join(tmpdir(), 'sb-netns-'));
    const ca = await createTestCA({ trustDomain: TD });
    for (const [name, id] of [['relay', 'relay/main'], ['connector', 'connector/tickets'], ['agent', 'agent/support']]) {
      await ca.writeIdentity(join(dir, name), await ca.issue(`spiffe://${TD}/${id}`));
    }
    await writeFile(
      join(dir, 'policy.yaml'),
      `trustDomain: ${TD}
servers:
  tickets: { connectors: [spiffe://${TD}/connector/tickets] }
rules:
  - id: support-tickets
    agents: [spiffe://${TD}/agent/support]
    servers: [tickets]
    tools: { allow: [echo, add], deny: [secret_admin] }
`,
    );
    await writeFile(
      join(dir, 'relay.yaml'),
      `listen: 0.0.0.0:8443\nidentity: ./relay\npolicy: ./policy.yaml\naudit: { path: ./audit.log, signingKey: none }\n`,
    );
    await writeFile(
      join(dir, 'connector.yaml'),
      `relays: [wss://${topo.addr.relayForPrivate}:8443]\nidentity: ./connector\nservers:\n  tickets: { url: http://127.0.0.1:${MCP_PORT}/mcp }\n`,
    );
    const server = topo.exec(topo.ns.private, process.execPath, [HTTP_SERVER], { PORT: String(MCP_PORT) });
    procs.push(server);
    await waitForLine(server, /listening/, 15_000);
    const relay = topo.exec(topo.ns.relay, process.execPath, [CLI, 'relay', '--config', join(dir, 'relay.yaml')]);
    procs.push(relay);
    await waitForLine(relay, /listening/i, 15_000);
    const connector = topo.exec(topo.ns.private, process.execPath, [CLI, 'connector', '--config', join(dir, 'connector.yaml')]);
    procs.push(connector);
    await waitForLine(connector, /registered|link up|welcome/i, 15_000);
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    topo?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the agent gets its tools and a real result through the relay', async () => {
    const client = new Client({ name: 'netns-agent', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({
        command: 'ip',
        args: ['netns', 'exec', topo.ns.agent, process.execPath, CLI, 'agent', 'stdio', '--relay', `wss://${topo.addr.relayForAgent}:8443`, '--server', 'tickets', '--identity', join(dir, 'agent')],
        stderr: 'pipe',
      }),
    );
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['add', 'echo']);
    expect(await client.callTool({ name: 'echo', arguments: { message: 'across namespaces' } })).toMatchObject({
      content: [{ type: 'text', text: 'echo: across namespaces' }],
    });
    await client.close();
  }, 30_000);

  it('a direct connection from the agent host to the MCP server fails', () => {
    const probe = `const s=require('net').connect(${MCP_PORT},'${topo.addr.private}');s.setTimeout(2000);s.on('connect',()=>{console.log('CONNECTED');process.exit(0)});s.on('timeout',()=>{console.log('TIMEOUT');process.exit(0)});s.on('error',e=>{console.log('ERROR '+e.code);process.exit(0)});`;
    const out = topo.run(topo.ns.agent, process.execPath, ['-e', probe]).trim();
    expect(out).not.toBe('CONNECTED');
    expect(out).toMatch(/^(TIMEOUT|ERROR )/);
  });

  it('the private host has no listener on a non-loopback address', () => {
    const lines = topo.run(topo.ns.private, 'ss', ['-ltnH']).trim().split('\n').filter(Boolean);
    // The MCP server's loopback listener is there…
    expect(lines.some((l) => l.includes(`127.0.0.1:${MCP_PORT}`))).toBe(true);
    // …and nothing else listens anywhere but loopback.
    const local = lines.map((l) => l.trim().split(/\s+/)[3] as string);
    for (const a of local) expect(a).toMatch(/^(127\.\d+\.\d+\.\d+|\[::1\]):\d+$/);
  });
});
