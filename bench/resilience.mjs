// Resilience figures, each next to its baseline from this run, with real processes throughout
// (`switchboard relay` ×2, `switchboard connector` linked to both, the stdio fixture server):
//
// 1. Failover: `switchboard agent stdio --relay A --relay B` driven by the MCP SDK Client calls
//    "echo" back to back; the relay it uses is killed with SIGKILL (then restarted, and the other
//    killed, alternately). Figure: the time from the kill to the first call answered after it.
// 2. Handshake flood: a legitimate agent (SDK) opens a fresh session and makes one call, again and
//    again, first with no flood, then while 500 TCP connections from 25 loopback addresses sit in
//    the TLS handshake on the same relay (a worker thread reopens each one the relay drops).
// 3. Fairness: agent B calls "echo" one call at a time, alone, then while agent A keeps 2000 calls
//    in flight on the same relay, link and connector; the relay's RSS alongside.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CLI, freePort, killAllGroups, killGroup, ms, now, oneLine, quantile, serverCommand, startProcess, stopProcess, waitForPort, withTimeout } from './lib/processes.mjs';

const TD = 'example.org';
const AGENT_ID = `spiffe://${TD}/agent/bench`;
const FLOOD_AGENT_ID = `spiffe://${TD}/agent/flood`;
const CONNECTOR_ID = `spiffe://${TD}/connector/bench`;
const QUIET = { env: { LOG_LEVEL: 'warn' } };

/** benchResilience measures failover time, session setup under a handshake flood, and fairness. */
export async function benchResilience({ quick = false } = {}) {
  const opts = quick
    ? { kills: 2, floodConns: 500, floodSources: 25, setups: 20, fairCalls: 100, inFlight: 500 }
    : { kills: 6, floodConns: 500, floodSources: 25, setups: 100, fairCalls: 1000, inFlight: 2000 };
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-resilience-'));
  const out = { opts };
  const procs = new Map();
  let connector;
  const clients = [];
  try {
    const sdk = await import('@switchboard/agent-sdk');
    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
    const { createTestCA } = await import('@switchboard/pki/testing');
    const ca = await createTestCA({ trustDomain: TD });
    const ids = {};
    for (const [name, id] of [['a', `spiffe://${TD}/relay/a`], ['b', `spiffe://${TD}/relay/b`], ['connector', CONNECTOR_ID], ['agent', AGENT_ID], ['flood', FLOOD_AGENT_ID]]) {
      ids[name] = join(dir, 'ids', name);
      await ca.writeIdentity(ids[name], await ca.issue(id));
    }
    await writeFile(
      join(dir, 'policy.yaml'),
      `trustDomain: ${TD}\nservers:\n  echo: { connectors: [${CONNECTOR_ID}] }\nrules:\n  - id: bench-echo\n    agents: [${AGENT_ID}, ${FLOOD_AGENT_ID}]\n    servers: [echo]\n    tools: { allow: [echo, whoami] }\n`,
    );
    const urls = {};
    const ports = {};
    for (const name of ['a', 'b']) {
      ports[name] = await freePort();
      urls[name] = `wss://127.0.0.1:${ports[name]}`;
      await writeFile(
        join(dir, `relay-${name}.yaml`),
        `listen: 127.0.0.1:${ports[name]}\nidentity: ${ids[name]}\npolicy: ${join(dir, 'policy.yaml')}\naudit: { path: ${join(dir, `audit-${name}.log`)}, durability: batched, signingKey: none }\n`,
      );
    }
    const startRelay = async (name) => {
      const p = startProcess(`relay-${name}`, process.execPath, [CLI, 'relay', '--config', join(dir, `relay-${name}.yaml`)], QUIET);
      procs.set(name, p);
      await waitForPort(ports[name], p, 20_000);
      return p;
    };
    const killRelay = async (name) => {
      const p = procs.get(name);
      procs.delete(name);
      killGroup(p.pid, 'SIGKILL');
      await stopProcess(p, 1000);
    };
    await startRelay('a');
    await startRelay('b');
    const fixture = await serverCommand(dir);
    await writeFile(
      join(dir, 'connector.yaml'),
      `relays: [${urls.a}, ${urls.b}]\nidentity: ${ids.connector}\nservers:\n  echo: { command: ${JSON.stringify(process.execPath)}, args: ${JSON.stringify(fixture.args)} }\n`,
    );
    connector = startProcess('connector', process.execPath, [CLI, 'connector', '--config', join(dir, 'connector.yaml')], QUIET);
    const identity = await sdk.AgentIdentity.fromDirectory(ids.agent);
    const floodIdentity = await sdk.AgentIdentity.fromDirectory(ids.flood);
    /** session opens an SDK session on relay `name`, retrying until the connector's link is up there. */
    const session = async (name, who = identity) => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          return await withTimeout(sdk.connect({ relay: urls[name], server: 'echo', identity: who }), 10_000, 'connect');
        } catch (err) {
          if (Date.now() > deadline || connector.exited) throw new Error(`no session on relay ${name}: ${oneLine(err)}`);
          await sleep(100);
        }
      }
    };
    for (const name of ['a', 'b']) await (await session(name)).close();
    const echo = async (client, message) => {
      const r = await client.callTool({ name: 'echo', arguments: { message } }, undefined, { timeout: 30_000 });
      if (r.content?.[0]?.text !== `echo: ${message}`) throw new Error(`echo failed: ${JSON.stringify(r).slice(0, 200)}`);
    };

    // ---- 3. fairness (first: it needs both relays up and nothing else running) -----------------
    {
      const b = await session('a');
      const a = await session('a', floodIdentity);
      clients.push(a, b);
      const relayPid = procs.get('a').pid;
      for (let i = 0; i < 200; i++) await echo(b, `w${i}`);
      const sequential = async (n) => {
        const lat = [];
        for (let i = 0; i < n; i++) {
          const s = now();
          await echo(b, `s${i}`);
          lat.push(ms(now() - s));
        }
        return lat.sort((x, y) => x - y);
      };
      const alone = await sequential(opts.fairCalls);
      const rssAlone = await rssKiB(relayPid);
      let stop = false;
      let answeredA = 0;
      let seq = 0;
      const pump = async () => {
        while (!stop) {
          await echo(a, `a${seq++}`);
          answeredA++;
        }
      };
      const pumps = Array.from({ length: opts.inFlight }, pump);
      await sleep(200);
      let rssFlood = 0;
      const sampler = (async () => {
        while (!stop) {
          rssFlood = Math.max(rssFlood, await rssKiB(relayPid));
          await sleep(100);
        }
      })();
      const t0 = now();
      const contended = await sequential(opts.fairCalls);
      const elapsed = ms(now() - t0);
      const aDuring = answeredA;
      stop = true;
      await Promise.all(pumps);
      await sampler;
      out.fairness = {
        alone: { p50: quantile(alone, 0.5), p99: quantile(alone, 0.99) },
        contended: { p50: quantile(contended, 0.5), p99: quantile(contended, 0.99) },
        floodCallsPerSecond: (aDuring / elapsed) * 1000,
        rssAloneMiB: rssAlone / 1024,
        rssFloodMiB: rssFlood / 1024,
      };
      await a.close();
      await b.close();
    }

    // ---- 2. handshake flood ---------------------------------------------------------------------
    {
      const setups = async (n) => {
        const lat = [];
        for (let i = 0; i < n; i++) {
          const s = now();
          const c = await withTimeout(sdk.connect({ relay: urls.b, server: 'echo', identity }), 15_000, 'connect under flood');
          await echo(c, `f${i}`);
          lat.push(ms(now() - s));
          await c.close();
        }
        return lat.sort((x, y) => x - y);
      };
      await setups(5);
      const calm = await setups(opts.setups);
      const worker = new Worker(new URL(import.meta.url), { workerData: { port: ports.b, conns: opts.floodConns, sources: opts.floodSources } });
      const ask = (msg) =>
        new Promise((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
          worker.postMessage(msg);
        });
      const started = await ask({ start: true });
      if (started.error) throw new Error(`flood: ${started.error}`);
      const flooded = await setups(opts.setups);
      const stats = await ask({ stop: true });
      await worker.terminate();
      out.flood = {
        calm: { p50: quantile(calm, 0.5), p99: quantile(calm, 0.99) },
        flooded: { p50: quantile(flooded, 0.5), p99: quantile(flooded, 0.99) },
        held: started.open,
        reopened: stats.reopened,
      };
    }

    // ---- 1. failover --------------------------------------------------------------------------
    {
      const client = new Client({ name: 'bench', version: '1' });
      await client.connect(
        new StdioClientTransport({
          command: process.execPath,
          args: [CLI, 'agent', 'stdio', '--relay', urls.a, '--relay', urls.b, '--server', 'echo', '--identity', ids.agent, '--no-renew'],
          stderr: 'ignore',
          env: { ...process.env, LOG_LEVEL: 'warn' },
        }),
      );
      clients.push(client);
      let seq = 0;
      const attempt = async () => {
        const message = `k${seq++}`;
        try {
          const r = await client.callTool({ name: 'echo', arguments: { message } }, undefined, { timeout: 15_000 });
          return r.content?.[0]?.text === `echo: ${message}` ? 'ok' : 'wrong';
        } catch (err) {
          return err?.code === -32052 ? 'lost' : `error ${oneLine(err)}`;
        }
      };
      for (let i = 0; i < 50; i++) if ((await attempt()) !== 'ok') throw new Error('the bridge does not answer before the kills');
      // The backend's pid before the kills and after: the same process means the session was resumed, not reopened.
      const pidOf = async () => /^pid (\d+)/.exec((await client.callTool({ name: 'whoami', arguments: {} })).content?.[0]?.text ?? '')?.[1];
      const pidBefore = await pidOf();
      const samePid = async () => (await pidOf()) === pidBefore;
      const recoveries = [];
      let lost = 0;
      let inUse = 'a';
      for (let k = 0; k < opts.kills; k++) {
        for (let i = 0; i < 20; i++) await attempt();
        const killedAt = now();
        const dying = killRelay(inUse);
        let firstOk = 0;
        const deadline = Date.now() + 20_000;
        while (firstOk === 0 && Date.now() < deadline) {
          const r = await attempt();
          if (r === 'ok') firstOk = ms(now() - killedAt);
          else if (r === 'lost') lost++;
          else if (r !== 'ok') await sleep(10);
        }
        await dying;
        if (firstOk === 0) throw new Error(`no call answered within 20 s of killing relay ${inUse}`);
        recoveries.push(firstOk);
        // Bring the killed relay back and wait for the connector's link to it before the next kill.
        await startRelay(inUse);
        await (await session(inUse)).close();
        inUse = inUse === 'a' ? 'b' : 'a';
      }
      const same = await samePid();
      await client.close();
      recoveries.sort((x, y) => x - y);
      out.failover = { kills: recoveries.length, p50: quantile(recoveries, 0.5), max: recoveries.at(-1), lost, samePid: same };
    }
  } catch (err) {
    out.failed = oneLine(err);
    if (process.env.BENCH_DEBUG) console.error(err);
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    if (connector) await stopProcess(connector, 3000);
    for (const p of procs.values()) await stopProcess(p, 3000);
    killAllGroups();
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

async function rssKiB(pid) {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const verdict = (ok) => (ok ? 'met' : 'NOT met');

/** printResilience prints {@link benchResilience}'s figures. */
export function printResilience(r) {
  const { opts } = r;
  console.log('\n## Resilience');
  console.log(
    'Real relay ×2 and connector processes, the stdio fixture server. Failover: `agent stdio --relay A --relay B` under the MCP SDK Client, ' +
      `calls back to back, the relay in use killed with SIGKILL ${opts.kills}× (restarted between kills). Flood: ${opts.floodConns} TCP connections from ${opts.floodSources} loopback addresses held in the TLS handshake ` +
      `(each one the relay drops is reopened), against the relay where an agent opens ${opts.setups} fresh sessions with one call each. Fairness: agent B's sequential calls alone and while agent A keeps ${opts.inFlight} calls in flight on the same link.`,
  );
  if (r.failed) {
    console.log(`failed: ${r.failed}`);
    return;
  }
  console.log('');
  console.log('| figure | p50 ms | p99 / max ms |');
  console.log('|---|---:|---:|');
  console.log(`| relay kill → first answered call (resumed session) | ${f2(r.failover.p50)} | ${f2(r.failover.max)} |`);
  console.log(`| fresh session + call, no flood | ${f2(r.flood.calm.p50)} | ${f2(r.flood.calm.p99)} |`);
  console.log(`| fresh session + call, ${opts.floodConns}-connection handshake flood | ${f2(r.flood.flooded.p50)} | ${f2(r.flood.flooded.p99)} |`);
  console.log(`| agent B call, alone | ${f2(r.fairness.alone.p50)} | ${f2(r.fairness.alone.p99)} |`);
  console.log(`| agent B call, agent A with ${opts.inFlight} in flight | ${f2(r.fairness.contended.p50)} | ${f2(r.fairness.contended.p99)} |`);
  console.log('');
  console.log(`failover: ${r.failover.kills} kills, ${r.failover.lost} calls in flight at a kill answered -32052; the same server process before and after: ${r.failover.samePid ? 'yes' : 'NO'}`);
  console.log(`flood: ${r.flood.held} connections held at once, ${r.flood.reopened} reopened after the relay dropped them; p99 under flood vs without: ${f2(r.flood.flooded.p99 / r.flood.calm.p99)}×`);
  console.log(
    `fairness: agent A got ${Math.round(r.fairness.floodCallsPerSecond)} calls/s meanwhile; B's p99 contended vs alone ${f2(r.fairness.contended.p99 / r.fairness.alone.p99)}×; ` +
      `relay RSS ${f2(r.fairness.rssAloneMiB)} MiB alone, ${f2(r.fairness.rssFloodMiB)} MiB at most with A's calls in flight`,
  );
  console.log('Goals:');
  console.log(`- relay kill → first answered call p50 ≤ 1000 ms: ${Math.round(r.failover.p50)} ms → ${verdict(r.failover.p50 <= 1000)}`);
  console.log(`- legitimate agent served within 1 s under the flood (p99): ${Math.round(r.flood.flooded.p99)} ms → ${verdict(r.flood.flooded.p99 <= 1000)}`);
}

// The flood's thread: holds `conns` TCP connections in the relay's TLS handshake (never sends a
// byte), from `sources` loopback addresses, reopening each one the relay closes after 20 ms.
if (!isMainThread) {
  const { port, conns, sources } = workerData;
  let running = false;
  let reopened = 0;
  const open = new Set();
  const dial = (i) => {
    if (!running) return;
    const s = net.connect({ host: '127.0.0.1', port, localAddress: `127.0.7.${(i % sources) + 1}` });
    open.add(s);
    s.on('error', () => undefined);
    s.once('close', () => {
      open.delete(s);
      if (!running) return;
      reopened++;
      setTimeout(dial, 20, i).unref();
    });
  };
  parentPort.on('message', async (msg) => {
    if (msg.start) {
      running = true;
      for (let i = 0; i < conns; i++) dial(i);
      await sleep(500);
      parentPort.postMessage({ open: open.size });
    } else if (msg.stop) {
      running = false;
      for (const s of open) s.destroy();
      parentPort.postMessage({ reopened });
    }
  });
}

if (isMainThread && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  printResilience(await benchResilience({ quick: process.argv.includes('--quick') }));
}
