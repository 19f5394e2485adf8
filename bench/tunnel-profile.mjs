#!/usr/bin/env node
// A tool for working on the tunnel's speed (not part of `pnpm bench`): a real `switchboard relay`
// and `switchboard connector` (separate processes, mTLS, policy, audit), one agent session through
// @switchboard/agent-sdk, sequential `tools/call echo` to test/fixtures/stdio-crash-server.mjs.
// Prints p50/p90 and calls/s of one session after a warm-up, the CPU each process spends per
// call (from /proc, all threads), and the p50 of a call the relay answers itself (a denied tool).
//
//   node bench/tunnel-profile.mjs [--calls 5000] [--warmup 3000] [--durability off|batched|strict]
//                                 [--inflight 32] [--profile relay|connector] [--http]
//
// --inflight K   also runs 20,000 calls with K in flight on the session and prints calls/s, CPU per
//                call and how busy the whole machine was.
// --profile P    starts that process with --cpu-prof; the .cpuprofile lands in ./tunnel-profile/
//                (open it in Chrome DevTools or read it with any cpuprofile tool).
// --http         serves `echo` from a Streamable-HTTP backend (test/fixtures/http-mcp-server.mjs)
//                instead of a stdio process per session.
// --setups N     also opens N sessions one after another on a server with a warm pool of 4
//                (`echo-pool`) and prints the median of each phase of a session's setup: TLS +
//                WebSocket upgrade (to the first message sent), and the MCP initialize round trip.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { connect, AgentIdentity, RelayClientTransport } from '@switchboard/agent-sdk';
import { createTestCA } from '@switchboard/pki/testing';
import { CLI, FIXTURE, HTTP_FIXTURE, freePort, quantile } from './lib/processes.mjs';

const TD = 'example.org';
const AGENT = `spiffe://${TD}/agent/bench`;
const CONNECTOR = `spiffe://${TD}/connector/bench`;
const ECHO = { name: 'echo', arguments: { message: 'hello' } };

const { values: o } = parseArgs({
  options: {
    calls: { type: 'string', default: '5000' },
    warmup: { type: 'string', default: '3000' },
    durability: { type: 'string', default: 'off' },
    inflight: { type: 'string' },
    profile: { type: 'string' },
    http: { type: 'boolean', default: false },
    setups: { type: 'string' },
  },
});
const calls = Math.min(1_000_000, Number(o.calls));
const warmup = Math.min(1_000_000, Number(o.warmup));
if (!['off', 'batched', 'strict'].includes(o.durability)) throw new Error('--durability is off, batched or strict');
if (o.profile !== undefined && !['relay', 'connector'].includes(o.profile)) throw new Error('--profile is relay or connector');

const cpuUs = async (pid) => {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000; // clock ticks of 10 ms → µs
};
const machine = async () => (await readFile('/proc/stat', 'utf8')).split('\n')[0].split(/\s+/).slice(1).map(Number);

const dir = await mkdtemp(join(tmpdir(), 'sb-tunnel-profile-'));
const procs = [];
try {
  const ca = await createTestCA({ trustDomain: TD });
  const ids = {};
  for (const [name, id] of [['relay', `spiffe://${TD}/relay/bench`], ['connector', CONNECTOR], ['agent', AGENT]]) {
    ids[name] = join(dir, name);
    await ca.writeIdentity(ids[name], await ca.issue(id));
  }
  const port = await freePort();
  const [relayAdmin, connectorAdmin] = [await freePort(), await freePort()];
  let backend = `{ command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(FIXTURE)}] }`;
  if (o.http) {
    const hp = await freePort();
    procs.push(spawn(process.execPath, [HTTP_FIXTURE], { env: { ...process.env, PORT: String(hp) }, stdio: 'ignore' }));
    backend = `{ url: http://127.0.0.1:${hp}/mcp }`;
  }
  await writeFile(join(dir, 'policy.yaml'), `trustDomain: ${TD}\nservers:\n  echo: { connectors: [${CONNECTOR}] }\n  echo-pool: { connectors: [${CONNECTOR}] }\nrules:\n  - id: bench\n    agents: [${AGENT}]\n    servers: [echo, echo-pool]\n    tools: { allow: [echo] }\n`);
  await writeFile(join(dir, 'relay.yaml'), `listen: 127.0.0.1:${port}\nidentity: ${ids.relay}\npolicy: ${join(dir, 'policy.yaml')}\naudit: { path: ${join(dir, 'audit.log')}, durability: ${o.durability}, signingKey: none }\nadmin: { listen: 127.0.0.1:${relayAdmin} }\n`);
  await writeFile(join(dir, 'connector.yaml'), `relays: [wss://127.0.0.1:${port}]\nidentity: ${ids.connector}\nadmin: { listen: 127.0.0.1:${connectorAdmin} }\nservers:\n  echo: ${backend}\n  echo-pool: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(FIXTURE)}], pool: { size: 4 } }\n`);
  const profDir = resolve('tunnel-profile');
  const flags = (name) => (o.profile === name ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []);
  const relay = spawn(process.execPath, [...flags('relay'), CLI, 'relay', '--config', join(dir, 'relay.yaml')], { stdio: 'ignore' });
  procs.push(relay);
  await sleep(800);
  const connector = spawn(process.execPath, [...flags('connector'), CLI, 'connector', '--config', join(dir, 'connector.yaml')], { stdio: 'ignore' });
  procs.push(connector);

  const identity = await AgentIdentity.fromDirectory(ids.agent);
  let client;
  for (let i = 0; i < 100 && !client; i++) {
    client = await connect({ relay: `wss://127.0.0.1:${port}`, server: 'echo', identity }).catch(() => sleep(200).then(() => undefined));
  }
  if (!client) throw new Error('no session through the tunnel within 20 s');

  for (let i = 0; i < warmup; i++) await client.callTool(ECHO);
  const [r0, c0, a0] = [await cpuUs(relay.pid), await cpuUs(connector.pid), process.cpuUsage()];
  const lat = [];
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await client.callTool(ECHO);
    lat.push(performance.now() - t);
  }
  const elapsed = performance.now() - t0;
  const [r1, c1, a1] = [await cpuUs(relay.pid), await cpuUs(connector.pid), process.cpuUsage(a0)];
  lat.sort((a, b) => a - b);
  const denied = [];
  for (let i = 0; i < 2000; i++) {
    const t = performance.now();
    await client.callTool({ name: 'not-allowed', arguments: {} }).catch(() => undefined);
    denied.push(performance.now() - t);
  }
  denied.sort((a, b) => a - b);
  const per = (a, b) => Math.round((b - a) / calls);
  console.log(
    `one session, ${calls} calls after ${warmup} (audit ${o.durability}${o.http ? ', HTTP backend' : ''}): ` +
      `p50 ${quantile(lat, 0.5).toFixed(3)} ms, p90 ${quantile(lat, 0.9).toFixed(3)} ms, ${Math.round((calls / elapsed) * 1000)} calls/s; ` +
      `CPU per call: relay ${per(r0, r1)} µs, connector ${per(c0, c1)} µs, agent ${Math.round((a1.user + a1.system) / calls)} µs; ` +
      `denied call (answered by the relay) p50 ${quantile(denied, 0.5).toFixed(3)} ms`,
  );

  if (o.inflight !== undefined) {
    const k = Math.min(1024, Number(o.inflight));
    const total = 20_000;
    let started = 0;
    const [m0, r2, c2, a2] = [await machine(), await cpuUs(relay.pid), await cpuUs(connector.pid), process.cpuUsage()];
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: k }, async () => {
        while (started < total) {
          started++;
          await client.callTool(ECHO);
        }
      }),
    );
    const e = performance.now() - t1;
    const [m1, r3, c3, a3] = [await machine(), await cpuUs(relay.pid), await cpuUs(connector.pid), process.cpuUsage(a2)];
    const all = m1.reduce((s, v, i) => s + v - m0[i], 0);
    const idle = m1[3] - m0[3] + (m1[4] - m0[4]);
    console.log(
      `${k} in flight on that session: ${Math.round((total / e) * 1000)} calls/s; CPU per call: relay ${Math.round((r3 - r2) / total)} µs, ` +
        `connector ${Math.round((c3 - c2) / total)} µs, agent ${Math.round((a3.user + a3.system) / total)} µs; machine ${Math.round((1 - idle / all) * 100)} % busy`,
    );
  }
  if (o.setups !== undefined) {
    const n = Math.min(1000, Number(o.setups));
    const phases = { upgrade: [], initialize: [], total: [] };
    const send = RelayClientTransport.prototype.send;
    let firstSend;
    RelayClientTransport.prototype.send = function (m, ...rest) {
      firstSend ??= performance.now();
      return send.call(this, m, ...rest);
    };
    const scrape = async () => {
      const out = new Map();
      for (const [who, p] of [['relay', relayAdmin], ['connector', connectorAdmin]]) {
        const text = await (await fetch(`http://127.0.0.1:${p}/metrics`)).text();
        for (const m of text.matchAll(/^(switchboard_\w*(?:setup|start)\w*)_(sum|count)(\{[^}]*\})? (\S+)$/gm)) out.set(`${who} ${m[1]}${m[3] ?? ''} ${m[2]}`, Number(m[4]));
      }
      return out;
    };
    const before = await scrape();
    for (let i = 0; i < n; i++) {
      await sleep(300); // the pool refills in the background
      firstSend = undefined;
      const t = performance.now();
      const c = await connect({ relay: `wss://127.0.0.1:${port}`, server: 'echo-pool', identity, resumption: false });
      const end = performance.now();
      phases.upgrade.push(firstSend - t);
      phases.initialize.push(end - firstSend);
      phases.total.push(end - t);
      await c.close();
    }
    RelayClientTransport.prototype.send = send;
    const med = (xs) => quantile(xs.sort((a, b) => a - b), 0.5).toFixed(2);
    console.log(`${n} warm-pool session setups, median ms: TLS + upgrade ${med(phases.upgrade)}, initialize ${med(phases.initialize)}, total ${med(phases.total)}`);
    const after = await scrape();
    for (const [k, v] of after) {
      if (!k.endsWith(' sum')) continue;
      const base = k.slice(0, -4);
      const count = (after.get(`${base} count`) ?? 0) - (before.get(`${base} count`) ?? 0);
      if (count > 0) console.log(`  ${base}: ${count} × mean ${(((v - (before.get(k) ?? 0)) / count) * 1000).toFixed(2)} ms`);
    }
  }
  await client.close();
  if (o.profile) {
    // A CPU profile is written when the process exits normally: SIGTERM drains and exits.
    (o.profile === 'relay' ? relay : connector).kill('SIGTERM');
    await sleep(2000);
    console.log(`profile: ${join(profDir, (await readdir(profDir)).filter((f) => f.endsWith('.cpuprofile')).sort().at(-1) ?? '(none)')}`);
  }
} finally {
  for (const p of procs) p.kill('SIGTERM');
  await sleep(500);
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
}
