// Session resumption with real processes: two `switchboard relay` processes, one connector linked
// to both, the fixture MCP server (its `whoami` tool answers with its pid and a per-process call
// count), and agents through `switchboard agent stdio --relay A --relay B` (under the MCP SDK
// Client) and through the agent SDK. The relay in use is killed with SIGKILL, brought back, then
// the other one is: each time the agent resumes the *same* backend session (same pid, the count
// goes on) through the relay that is left, every call is answered or gets -32052, each relay's
// trail records `session.resume` and verifies.
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { connect, startHttpBridge } from '@switchboard/agent-sdk';
import { parseConnectorConfig, startConnector, type Connector } from '@switchboard/connector';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, CRASH, TD, startRelayPair, until, type RelayPair } from './world.js';

const CONNECTOR = `spiffe://${TD}/connector/main`;
const DESKTOP = `spiffe://${TD}/agent/desktop`;
const BOT = `spiffe://${TD}/agent/bot`;
const CURSOR = `spiffe://${TD}/agent/cursor`;
const POLICY = `trustDomain: ${TD}
servers:
  fixture: { connectors: [${CONNECTOR}] }
rules:
  - id: agents
    agents: [${DESKTOP}, ${BOT}, ${CURSOR}]
    servers: [fixture]
    tools: { allow: [echo, whoami] }
`;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

interface Caller {
  callTool(params: { name: string; arguments?: Record<string, unknown> }): Promise<unknown>;
}

/** whoami is the backend's pid and call count, as its tool answers. */
async function whoami(c: Caller): Promise<{ pid: number; asked: number }> {
  const r = (await c.callTool({ name: 'whoami', arguments: {} })) as { content: { text: string }[] };
  const m = /^pid (\d+) ppid \d+ asked (\d+) echoed \d+$/.exec(r.content[0]?.text ?? '');
  if (!m) throw new Error(`whoami answered ${JSON.stringify(r)}`);
  return { pid: Number(m[1]), asked: Number(m[2]) };
}

async function world(): Promise<{ relays: RelayPair; connector: Connector; bothUp: () => boolean }> {
  const relays = await startRelayPair(POLICY);
  cleanups.push(() => relays.close());
  const connector = await startConnector(
    parseConnectorConfig({
      relays: [relays.urls.a, relays.urls.b],
      identity: { svid: await relays.ca.issue(CONNECTOR), bundle: relays.ca.bundle },
      // Uncontained: the test tells backend processes apart by their host PID, which a sandbox hides.
      servers: { fixture: { command: process.execPath, args: [CRASH], egress: 'any', filesystem: 'any' } },
    }),
    { drainTimeoutMs: 0, renew: false, backoff: { baseMs: 100, capMs: 500 } },
  );
  cleanups.push(() => connector.close());
  const bothUp = () => connector.links().every((l) => l.state === 'up');
  await until('both links up', bothUp, 15_000);
  return { relays, connector, bothUp };
}

describe('session resumption across relay failures, end to end', () => {
  it('`agent stdio` and the SDK: kill -9 the relay in use, restart it, kill -9 the other; the same backend session answers throughout', async () => {
    const { relays, connector, bothUp } = await world();
    const ids = join(relays.dir, 'desktop');
    await relays.ca.writeIdentity(ids, await relays.ca.issue(DESKTOP));
    const desktop = new Client({ name: 'desktop', version: '1.0.0' });
    await desktop.connect(
      new StdioClientTransport({ command: process.execPath, args: [CLI, 'agent', 'stdio', '--relay', relays.urls.a, '--relay', relays.urls.b, '--server', 'fixture', '--identity', ids, '--no-renew'], stderr: 'pipe' }),
    );
    cleanups.push(() => desktop.close());
    const bot = await connect({ relay: [relays.urls.a, relays.urls.b], server: 'fixture', identity: { svid: await relays.ca.issue(BOT), bundle: relays.ca.bundle } });
    cleanups.push(() => bot.close());
    // `agent http` (the HTTP bridge) for an HTTP-only client: its MCP session survives the kills too.
    const bridge = await startHttpBridge({ listen: '127.0.0.1:0', relay: [relays.urls.a, relays.urls.b], server: 'fixture', identity: { svid: await relays.ca.issue(CURSOR), bundle: relays.ca.bundle }, renew: false });
    cleanups.push(() => bridge.close());
    const cursorTransport = new StreamableHTTPClientTransport(new URL(bridge.url));
    const cursor = new Client({ name: 'cursor', version: '1.0.0' });
    await cursor.connect(cursorTransport);
    cleanups.push(() => cursor.close());
    const httpSession = cursorTransport.sessionId;
    expect(httpSession).toMatch(/./);

    const first = { desktop: await whoami(desktop), bot: await whoami(bot) };
    const cursorFirst = await whoami(cursor);
    expect(first.desktop.asked).toBe(1);
    expect(first.bot.asked).toBe(1);
    expect(first.desktop.pid).not.toBe(first.bot.pid);

    const outcomes = { ok: 0, lost: 0, other: [] as string[] };
    let n = 0;
    // Calls two at a time from each agent; `during` starts once a few have been answered.
    const calls = async (enough: number, during?: () => Promise<void>): Promise<void> => {
      let answered = 0;
      let side: Promise<void> | undefined;
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && answered < enough && n < 10_000) {
        const i = n++;
        const results = await Promise.allSettled(
          [desktop, desktop, bot, bot].map((c, j) => c.callTool({ name: 'echo', arguments: { message: `${i}.${j}` } })),
        );
        for (const [j, r] of results.entries()) {
          if (r.status === 'fulfilled' && (r.value as { content: { text: string }[] }).content[0]?.text === `echo: ${i}.${j}`) {
            outcomes.ok++;
            answered++;
          } else if (r.status === 'rejected' && (r.reason as { code?: number }).code === -32052) outcomes.lost++;
          else outcomes.other.push(r.status === 'rejected' ? String(r.reason) : JSON.stringify(r.value).slice(0, 200));
        }
        if (side === undefined && during !== undefined && answered >= 12) side = during();
      }
      await side;
      expect(answered).toBeGreaterThanOrEqual(enough);
    };

    await calls(20);
    await calls(60, () => relays.kill('a'));
    const afterA = { desktop: await whoami(desktop), bot: await whoami(bot) };
    await relays.start('a');
    await until('the link to the restarted relay', bothUp, 15_000);
    await calls(60, () => relays.kill('b'));
    const afterB = { desktop: await whoami(desktop), bot: await whoami(bot) };

    // The same backend processes answered throughout, their counts going on: nothing was reopened.
    expect(afterA).toEqual({ desktop: { pid: first.desktop.pid, asked: 2 }, bot: { pid: first.bot.pid, asked: 2 } });
    expect(afterB).toEqual({ desktop: { pid: first.desktop.pid, asked: 3 }, bot: { pid: first.bot.pid, asked: 3 } });
    // The HTTP client kept its Mcp-Session-Id and its backend process through both kills.
    expect(await whoami(cursor)).toEqual({ pid: cursorFirst.pid, asked: 2 });
    expect(cursorTransport.sessionId).toBe(httpSession);
    expect(outcomes.other).toEqual([]);
    const c = connector.counters();
    expect(c.sessionsOpened).toBe(3);
    // Every session was on the relay killed each time (connect takes a first, then the one left): 3 × 2 resumes.
    expect(c.sessionsResumed).toBe(6);
    expect(c.resumesRefused).toBe(0);

    // Each relay records the resumes it carried; both trails verify (a's across its kill and restart).
    const resumedOn = async (name: 'a' | 'b') => (await relays.trail(name)).filter((r) => r.type === 'session.resume').map((r) => r.agent).sort();
    expect(await resumedOn('b')).toEqual([BOT, CURSOR, DESKTOP]);
    expect(await resumedOn('a')).toEqual([BOT, CURSOR, DESKTOP]);
    for (const name of ['a', 'b'] as const) {
      // Killed with SIGKILL (b) or still running (a): the tail after the last checkpoint is unsigned.
      expect(await relays.verify(name), `audit verify ${name}`).toMatch(/^3: UNSIGNED: \d+ records.*\n.*\d+ records? \(seq \d+–\d+\) no signed checkpoint covers/s);
      expect(await relays.verify(name, '--allow-unsigned'), `audit verify --allow-unsigned ${name}`).toBe(0);
    }
    console.log(`resume: ${outcomes.ok} calls answered, ${outcomes.lost} in flight at a kill got -32052, 6 resumes of 3 backend sessions (SDK, agent stdio, agent http)`);
  });
});
