// Relay failover with real processes: two `switchboard relay` processes, one connector linked to
// both, a real MCP server behind it, and `switchboard agent stdio --relay A --relay B` driven by the
// MCP SDK Client. Calls run throughout; relay A is killed with SIGKILL; the bridge opens a new
// session through relay B and the MCP client above it carries on: every call either succeeds or
// gets the defined -32052 (it was in flight at the kill), nothing else.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { parseConnectorConfig, startConnector } from '@switchboard/connector';
import { generateAuditKey, writeAuditKeyFiles } from '@switchboard/audit';
import { createTestCA } from '@switchboard/pki/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, EVERYTHING, TD, startRelayProcess, type RelayProcess } from './world.js';
import { createServer } from 'node:net';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const run = promisify(execFile);
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

async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('relay failover, end to end', () => {
  it('`agent stdio` with two relays: kill -9 the one in use, restart it, kill -9 the other; the MCP client carries on throughout', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-failover-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ca = await createTestCA({ trustDomain: TD });
    await writeFile(join(dir, 'policy.yaml'), POLICY);
    await mkdir(join(dir, 'audit-key'));
    await writeAuditKeyFiles(join(dir, 'audit-key'), generateAuditKey());
    const running = new Map<string, RelayProcess>();
    const start = async (name: string): Promise<RelayProcess> => {
      const relay = await startRelayProcess(join(dir, `relay-${name}.yaml`));
      running.set(name, relay);
      return relay;
    };
    const kill = async (name: string): Promise<void> => {
      const relay = running.get(name) as RelayProcess;
      relay.child.kill('SIGKILL');
      await relay.exited;
      running.delete(name);
    };
    cleanups.push(async () => {
      for (const name of [...running.keys()]) await kill(name);
    });
    const urls: Record<string, string> = {};
    for (const name of ['a', 'b']) {
      const ids = join(dir, `relay-${name}`);
      await ca.writeIdentity(ids, await ca.issue(`spiffe://${TD}/relay/${name}`));
      const port = await freePort();
      urls[name] = `wss://127.0.0.1:${port}`;
      await writeFile(
        join(dir, `relay-${name}.yaml`),
        `listen: 127.0.0.1:${port}\nidentity: ./relay-${name}\npolicy: ./policy.yaml\naudit: { path: ./audit-${name}.log, signingKey: ./audit-key/audit_key.pem }\n`,
      );
      await start(name);
    }
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
      new StdioClientTransport({ command: process.execPath, args: [CLI, 'agent', 'stdio', '--relay', urls.a as string, '--relay', urls.b as string, '--server', 'everything', '--identity', agentIds, '--no-renew'], stderr: 'pipe' }),
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
    for (const name of ['a', 'b']) {
      const trail = (await readFile(join(dir, `audit-${name}.log`), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { type: string; agent?: string });
      expect(trail.some((r) => r.type === 'session.open' && r.agent === AGENT), name).toBe(true);
      const verify = await run(process.execPath, [CLI, 'audit', 'verify', join(dir, `audit-${name}.log`), '--key', join(dir, 'audit-key', 'audit_pub.pem')]).then(
        () => 0,
        (e: { code: number; stdout: string; stderr: string }) => `${e.code}: ${e.stdout}${e.stderr}`,
      );
      expect(verify, `audit verify ${name}`).toBe(0);
    }
    console.log(`failover: ${outcomes.ok} calls answered, ${outcomes.lost} in flight at a kill got -32052, first answer after each kill: ${recoveries.join(' ms, ')} ms`);
  });
});
