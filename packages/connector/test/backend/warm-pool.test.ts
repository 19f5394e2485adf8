// Warm pools (connector.yaml `pool: { size, idleMs }`): real stdio MCP server processes started
// before any session, through the real connector and a scripted relay link. Each session gets its
// own process, which learns its agent from the agent file, and is never reused.
import { encodeControl, FrameType } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConnectorConfig, startConnector, type Connector } from '../../src/index.js';
import { until, type HarnessLink } from '../harness/relay-harness.js';
import { alive, call, ECHO_SERVER, EXIT_AT_ONCE, INIT, INITIALIZED, memoryLogger, setup, uncontained } from '../harness/setup.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function pooled(pool: Record<string, unknown>, server: Record<string, unknown> = { command: process.execPath, args: [ECHO_SERVER] }, contained = false) {
  const s = await setup();
  cleanup.push(() => s.harness.close());
  const logs = memoryLogger();
  const config = parseConnectorConfig({ relays: [s.harness.url], identity: s.identity, servers: { echo: contained ? { ...server, pool } : uncontained({ ...server, pool }) } });
  const connector = await startConnector(config, { logger: logs, backoff: { baseMs: 10, capMs: 50 }, drainTimeoutMs: 0 });
  cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
  const link = await s.harness.link(1);
  await link.frame((f) => f.type === FrameType.HELLO);
  return { ...s, connector, link, logs };
}

const counters = (c: Connector): Record<string, number> => (c as unknown as { counters(): Record<string, number> }).counters();
const ready = (c: Connector): number => c.pools()[0]?.ready ?? -1;

interface Seen {
  env: string | null;
  file: string | null;
  fromFile: { agent: string; jwtSvid?: string } | null;
  pid: number;
}

/** session opens `id` for `agent`, initializes, and asks the server who it serves and its pid. */
async function session(link: HarnessLink, id: number, agent: string, jwtSvid?: string): Promise<Seen> {
  link.send(encodeControl(FrameType.OPEN, id, { server: 'echo', agent, ...(jwtSvid ? { jwtSvid } : {}) }));
  await link.frame((f) => f.type === FrameType.OPEN_OK && f.sessionId === id, 5000, 'OPEN_OK');
  link.data(id, INIT);
  await link.json(id, (m) => m.id === 1);
  link.data(id, INITIALIZED);
  link.data(id, call(2, 'identity'));
  link.data(id, call(3, 'pid'));
  const who = await link.json(id, (m) => m.id === 2);
  const pid = await link.json(id, (m) => m.id === 3);
  const text = (m: Record<string, unknown>) => ((m.result as { content: { text: string }[] }).content[0] as { text: string }).text;
  return { ...(JSON.parse(text(who)) as Omit<Seen, 'pid'>), pid: Number(text(pid)) };
}

describe('warm pool', () => {
  it('fills to its size before any session, hands each session its own pre-spawned process, and refills', async () => {
    const { connector, link } = await pooled({ size: 2 });
    await until(() => ready(connector) === 2, 10_000, 'two pre-spawned processes');

    const a = await session(link, 1, 'spiffe://example.org/agent/a', 'jwt.for.a');
    expect(a.env).toBeNull(); // a pre-spawned process never has an agent in its environment
    expect(a.file).toMatch(/\/agent\.json$/);
    expect(a.fromFile).toEqual({ agent: 'spiffe://example.org/agent/a', jwtSvid: 'jwt.for.a' });
    const b = await session(link, 2, 'spiffe://example.org/agent/b');
    expect(b.fromFile).toEqual({ agent: 'spiffe://example.org/agent/b' });
    expect(b.pid).not.toBe(a.pid);
    expect(b.file).not.toBe(a.file);
    expect(counters(connector)).toMatchObject({ poolHits: 2, poolMisses: 0 });
    await until(() => ready(connector) === 2, 10_000, 'the pool refilled');
  });

  it('works contained: the sandbox sees its agent file read-only at /run/switchboard, and nothing else of the connector', async () => {
    const { connector, link } = await pooled({ size: 1 }, { command: process.execPath, args: [ECHO_SERVER] }, true);
    await until(() => ready(connector) === 1, 10_000, 'a pre-spawned contained process');
    const a = await session(link, 1, 'spiffe://example.org/agent/a', 'jwt.for.a');
    expect(a).toMatchObject({ env: null, file: '/run/switchboard/agent.json', fromFile: { agent: 'spiffe://example.org/agent/a', jwtSvid: 'jwt.for.a' } });
  });

  it('never reuses a process: the session that ends takes its process with it', async () => {
    const { connector, link } = await pooled({ size: 1 });
    await until(() => ready(connector) === 1, 10_000, 'a pre-spawned process');
    const a = await session(link, 1, 'spiffe://example.org/agent/a');
    link.closeSession(1);
    await until(() => !alive(a.pid), 5000, 'the first process to exit');
    await until(() => ready(connector) === 1, 10_000, 'the pool refilled');
    const b = await session(link, 2, 'spiffe://example.org/agent/b');
    expect(b.pid).not.toBe(a.pid);
    expect(b.fromFile?.agent).toBe('spiffe://example.org/agent/b');
    expect(counters(connector)).toMatchObject({ poolHits: 2, poolMisses: 0 });
  });

  it('spawns cold when the pool is empty, with the agent in the environment as without a pool', async () => {
    const { connector, link } = await pooled({ size: 1 });
    await until(() => ready(connector) === 1, 10_000, 'a pre-spawned process');
    // Two OPENs at once: the first takes the waiting process, the second finds the pool empty.
    const [first, second] = await Promise.all([session(link, 1, 'spiffe://example.org/agent/a'), session(link, 2, 'spiffe://example.org/agent/b')]);
    expect(first.fromFile?.agent).toBe('spiffe://example.org/agent/a');
    expect(second).toMatchObject({ env: 'spiffe://example.org/agent/b', file: null, fromFile: null });
    expect(counters(connector)).toMatchObject({ poolHits: 1, poolMisses: 1 });
  });

  it('lets its processes go after idleMs without a session, and fills again at the next one', async () => {
    // idleMs well above a spawn (~0.2–0.5 s here), so both processes are waiting when the pool idles out.
    const { connector, link } = await pooled({ size: 2, idleMs: 1500 });
    await until(() => ready(connector) === 2, 10_000, 'two pre-spawned processes');
    await until(() => ready(connector) === 0, 5000, 'the idle pool to empty');
    expect(counters(connector).poolRetired).toBe(2);
    const a = await session(link, 1, 'spiffe://example.org/agent/a');
    expect(a.env).toBe('spiffe://example.org/agent/a'); // cold: nothing was waiting
    await until(() => ready(connector) === 2, 10_000, 'the pool refilled after the session');
  });

  it('retires a pre-spawned process that exits before any session and backs off instead of respawning in a loop', async () => {
    const { connector, logs } = await pooled({ size: 2 }, { command: process.execPath, args: [EXIT_AT_ONCE] });
    await until(() => counters(connector).poolRetired >= 2, 5000, 'the dead processes to be retired');
    await new Promise((r) => setTimeout(r, 1500));
    // 1 s, then 2 s between refills: a handful in 1.5 s, not hundreds.
    expect(counters(connector).poolRetired).toBeLessThanOrEqual(6);
    expect(ready(connector)).toBe(0);
    expect(logs.entries.some((e) => e.msg === 'warm pool could not start a backend process')).toBe(true);
  });
});

describe('pool config', () => {
  const base = { relays: ['wss://relay.example.org:8443'], identity: '/ids/connector' };
  const parse = (server: Record<string, unknown>) => () => parseConnectorConfig({ ...base, servers: { echo: server } });
  it('reads size and idleMs (default 10 minutes)', () => {
    const c = parseConnectorConfig({ ...base, servers: { echo: { command: '/bin/true', pool: { size: 3 } } } });
    expect(c.servers.echo).toMatchObject({ pool: { size: 3, idleMs: 600_000 }, isolation: 'session' });
  });
  it('refuses a size out of range, an unknown key, a pool on a shared or HTTP server', () => {
    expect(parse({ command: '/bin/true', pool: { size: 0 } })).toThrow(/servers\.echo\.pool\.size/);
    expect(parse({ command: '/bin/true', pool: { size: 2, idle: 5 } })).toThrow(/servers\.echo\.pool\.idle: unknown key/);
    expect(parse({ command: '/bin/true', pool: { size: 2 }, isolation: 'shared' })).toThrow(/servers\.echo\.pool: is for isolation: session/);
    expect(parse({ url: 'http://127.0.0.1:9/mcp', pool: { size: 2 } })).toThrow(/servers\.echo\.pool: unknown key/);
    expect(parse({ command: '/bin/true', isolation: 'private' })).toThrow(/servers\.echo\.isolation: must be session .* or shared/);
  });
});
