// Relay failover with real processes: two `switchboard relay` processes, one connector linked to
// both, a real MCP server behind it, and `switchboard agent stdio --relay A --relay B` driven by the
// MCP SDK Client. Calls run throughout; relay A is killed with SIGKILL; with resumption off
// (`--no-resume`) the bridge opens a new session through relay B, replaying initialize, and the MCP
// client above it carries on: every call either succeeds or gets the defined -32052 (it was in
// flight at the kill), nothing else. test/e2e/resume.test.ts is the same with resumption on.
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { parseConnectorConfig, startConnector } from '@switchboard/connector';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, EVERYTHING, TD, startRelayPair, until } from './world.js';

const CONNECTOR = `spiffe://${TD}/connector/main`;
const AGENT = `spiffe://${TD}/agent/desktop`;
const POLICY = `trustDomain: ${TD}
servers:
  everything: { connectors: [${CONNECTOR}] }
rules:
  - id: desktop-echo
    agents: [${AGENT}]
    servers: [everything]
    tools: { allow: [echo] }
`;
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe('relay failover, end to end', () => {
  it('`agent stdio` with two relays: kill -9 the one in use, restart it, kill -9 the other; the MCP client carries on throughout', async () => {
    const relays = await startRelayPair(POLICY);
    cleanups.push(() => relays.close());
    const { ca, dir, urls } = relays;
    const kill = (name: 'a' | 'b') => relays.kill(name);
    const start = (name: 'a' | 'b') => relays.start(name);
    const connector = await startConnector(
      parseConnectorConfig({ relays: [urls.a, urls.b], identity: { svid: await ca.issue(CONNECTOR), bundle: ca.bundle }, servers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } } }),
      { drainTimeoutMs: 0, renew: false, backoff: { baseMs: 100, capMs: 500 } },
    );
    cleanups.push(() => connector.close());
    const bothUp = () => connector.links().every((l) => l.state === 'up');
    await until('both links up', bothUp, 15_000);
    const agentIds = join(dir, 'agent');
    await ca.writeIdentity(agentIds, await ca.issue(AGENT));
    const client = new Client({ name: 'desktop', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({ command: process.execPath, args: [CLI, 'agent', 'stdio', '--relay', urls.a as string, '--relay', urls.b as string, '--server', 'everything', '--identity', agentIds, '--no-renew', '--no-resume'], stderr: 'pipe' }),
    );
    cleanups.push(() => client.close());

    const outcomes = { ok: 0, lost: 0, other: [] as string[] };
    let n = 0;
    // Calls two at a time (so a kill finds some unanswered) until `enough` answered ones; returns
    // how long after the kill the first one was answered.
    const calls = async (enough: number, during?: () => Promise<void>): Promise<number> => {
      const from = Date.now();
      let first = 0;
      let answered = 0;
      let side: Promise<void> | undefined;
      let killAt = 0;
      const deadline = from + 30_000;
      while (Date.now() < deadline && answered < enough && n < 10_000) {
        const i = n++;
        const results = await Promise.allSettled([`${i}a`, `${i}b`].map((k) => client.callTool({ name: 'echo', arguments: { message: k } })));
        for (const [j, r] of results.entries()) {
          if (r.status === 'fulfilled' && (r.value as { content: { text: string }[] }).content[0]?.text === `Echo: ${i}${j === 0 ? 'a' : 'b'}`) {
            outcomes.ok++;
            answered++;
            if (side !== undefined && first === 0) first = Date.now() - killAt;
          } else if (r.status === 'rejected' && (r.reason as { code?: number }).code === -32052) outcomes.lost++;
          else outcomes.other.push(r.status === 'rejected' ? String(r.reason) : JSON.stringify(r.value).slice(0, 200));
        }
        // The kill starts while the next calls go out: some are in flight when the relay dies.
        if (side === undefined && during !== undefined && answered >= 10) {
          killAt = Date.now();
          side = during();
        }
      }
      await side;
      expect(answered).toBe(enough);
      return first;
    };
    const recoveries: number[] = [];
    await calls(20);
    recoveries.push(await calls(40, () => kill('a')));
    await start('a');
    await until('the link to the restarted relay', bothUp, 15_000);
    recoveries.push(await calls(40, () => kill('b')));
    expect(outcomes.other).toEqual([]);
    expect(outcomes.ok).toBe(100);
    expect(recoveries.every((ms) => ms > 0)).toBe(true);
    await client.close();
    // Every relay's trail verifies (a's across its kill and restart) and shows the agent's sessions.
    for (const name of ['a', 'b'] as const) {
      const trail = await relays.trail(name);
      expect(trail.some((r) => (r.type === 'session.open' || r.type === 'session.resume') && r.agent === AGENT), name).toBe(true);
      {
      // Killed with SIGKILL (b) or still running (a): the tail after the last checkpoint is unsigned.
      expect(await relays.verify(name), `audit verify ${name}`).toMatch(/^3: UNSIGNED: \d+ records.*\n.*\d+ records? \(seq \d+–\d+\) no signed checkpoint covers/s);
      expect(await relays.verify(name, '--allow-unsigned'), `audit verify --allow-unsigned ${name}`).toBe(0);
    }
    }
    console.log(`failover: ${outcomes.ok} calls answered, ${outcomes.lost} in flight at a kill got -32052, first answer after each kill: ${recoveries.join(' ms, ')} ms`);
  });
});
