// Relay audit figures: MCP tools/call "echo" calls/s through the real tunnel — relay and
// connector as separate processes (`switchboard relay` / `switchboard connector`), 32 concurrent
// agent sessions via @switchboard/agent-sdk connect(), one stdio server process per session
// (test/fixtures/stdio-crash-server.mjs) — with the relay's audit trail at durability off, batched
// and strict, all in one run. The three tunnels run side by side and are measured in interleaved
// slices, so load from other jobs on the machine falls on each mode alike. Goal: strict keeps
// ≥ 50 % of the audit-off calls/s at 32 sessions. Every spawned process is killed at the end.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { CLI, freePort, killAllGroups, ms, now, oneLine, quantile, serverCommand, startProcess, stopProcess, waitForPort, withTimeout } from './lib/processes.mjs';

const MODES = ['off', 'batched', 'strict'];
const TD = 'example.org';
const AGENT_ID = `spiffe://${TD}/agent/bench`;
const CONNECTOR_ID = `spiffe://${TD}/connector/bench`;
const CALL_TIMEOUT_MS = 10_000;
const MAX_CALLS_PER_SESSION = 2_000_000;
const GOAL = 0.5;
const QUIET = { env: { LOG_LEVEL: 'warn' } };

async function startTunnel(dir, mode, ids, fixtureArgs) {
  const port = await freePort();
  const adminPort = await freePort();
  const d = join(dir, mode);
  await mkdir(d);
  await writeFile(
    join(d, 'relay.yaml'),
    `listen: 127.0.0.1:${port}
identity: ${ids.relay}
policy: ${join(dir, 'policy.yaml')}
audit:
  path: ${join(d, 'audit.log')}
  durability: ${mode}
  signingKey: ${join(dir, 'pki', 'audit_key.pem')}
admin: { listen: 127.0.0.1:${adminPort} }
`,
  );
  await writeFile(
    join(d, 'connector.yaml'),
    `relays: [wss://127.0.0.1:${port}]
identity: ${ids.connector}
servers:
  echo: { command: ${JSON.stringify(process.execPath)}, args: ${JSON.stringify(fixtureArgs)} }
`,
  );
  const acc = () => ({ calls: 0, elapsedMs: 0, latencies: [] });
  const t = { mode, port, adminPort, url: `wss://127.0.0.1:${port}`, clients: [], acc: acc(), one: acc() };
  t.relay = startProcess(`relay (${mode})`, process.execPath, [CLI, 'relay', '--config', join(d, 'relay.yaml')], QUIET);
  await waitForPort(port, t.relay, 20_000);
  t.connector = startProcess(`connector (${mode})`, process.execPath, [CLI, 'connector', '--config', join(d, 'connector.yaml')], QUIET);
  return t;
}

async function openSessions(t, sdk, identity, n) {
  // The connector registers asynchronously: retry the first session (bounded).
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      t.clients.push(await withTimeout(sdk.connect({ relay: t.url, server: 'echo', identity }), 15_000, 'connect'));
      break;
    } catch (err) {
      if (Date.now() > deadline || t.relay.exited || t.connector.exited) throw new Error(`${t.mode}: no session: ${oneLine(err)} ${t.connector.tail.slice(-200)}`);
      await sleep(200);
    }
  }
  for (let i = 1; i < n; i += 8) {
    const batch = Array.from({ length: Math.min(8, n - i) }, () => withTimeout(sdk.connect({ relay: t.url, server: 'echo', identity }), 30_000, 'connect'));
    t.clients.push(...(await Promise.all(batch)));
  }
}

let seq = 0;
async function call(client) {
  const message = `bench-${seq++}`;
  const r = await client.callTool({ name: 'echo', arguments: { message } }, undefined, { timeout: CALL_TIMEOUT_MS });
  if (r.isError || r.content?.[0]?.text !== `echo: ${message}`) throw new Error(`echo failed: ${JSON.stringify(r).slice(0, 200)}`);
}

async function slice(t, clients, acc, durationMs) {
  const t0 = now();
  const endAt = t0 + BigInt(durationMs) * 1_000_000n;
  const counts = await withTimeout(
    Promise.all(
      clients.map(async (c) => {
        let n = 0;
        while (n < MAX_CALLS_PER_SESSION && now() < endAt) {
          const s = now();
          await call(c);
          acc.latencies.push(ms(now() - s));
          n++;
        }
        return n;
      }),
    ),
    durationMs + CALL_TIMEOUT_MS + 5000,
    `${t.mode} load`,
  );
  acc.elapsedMs += ms(now() - t0);
  acc.calls += counts.reduce((a, b) => a + b, 0);
}

async function auditMetrics(t) {
  try {
    const text = await (await fetch(`http://127.0.0.1:${t.adminPort}/metrics`)).text();
    const get = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { records: get('switchboard_relay_audit_records_total'), syncs: get('switchboard_relay_audit_syncs_total'), available: get('switchboard_relay_audit_available') };
  } catch {
    return { records: NaN, syncs: NaN, available: NaN };
  }
}


/**
 * benchRelayAudit measures calls/s through relay + connector processes with the audit trail off,
 * batched and strict (interleaved slices, same machine, same run). `quick` uses 8 sessions and
 * shorter slices (to check that the benchmark runs).
 */
export async function benchRelayAudit({ quick = false } = {}) {
  const opts = quick ? { sessions: 8, rounds: 2, sliceMs: 400, warmup: 20 } : { sessions: 32, rounds: 5, sliceMs: 1500, warmup: 100 };
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-audit-relay-'));
  const out = { opts, modes: {}, notes: [] };
  const tunnels = [];
  try {
    const sdk = await import('@switchboard/agent-sdk');
    const { createTestCA } = await import('@switchboard/pki/testing');
    const { generateAuditKey, writeAuditKeyFiles } = await import('@switchboard/audit');
    const ca = await createTestCA({ trustDomain: TD });
    const ids = {};
    for (const [name, id] of [['relay', `spiffe://${TD}/relay/bench`], ['connector', CONNECTOR_ID], ['agent', AGENT_ID]]) {
      ids[name] = join(dir, 'ids', name);
      await ca.writeIdentity(ids[name], await ca.issue(id));
    }
    await mkdir(join(dir, 'pki'));
    await writeAuditKeyFiles(join(dir, 'pki'), generateAuditKey());
    await writeFile(
      join(dir, 'policy.yaml'),
      `trustDomain: ${TD}\nservers:\n  echo: { connectors: [${CONNECTOR_ID}] }\nrules:\n  - id: bench-echo\n    agents: [${AGENT_ID}]\n    servers: [echo]\n    tools: { allow: [echo] }\n`,
    );
    const fixtureArgs = (await serverCommand(dir)).args;
    const identity = await sdk.AgentIdentity.fromDirectory(ids.agent);
    for (const mode of MODES) tunnels.push(await startTunnel(dir, mode, ids, fixtureArgs));
    for (const t of tunnels) {
      await openSessions(t, sdk, identity, opts.sessions);
      await withTimeout(Promise.all(t.clients.map(async (c) => { for (let i = 0; i < opts.warmup; i++) await call(c); })), 120_000, `${t.mode} warm-up`);
      t.before = await auditMetrics(t);
    }
    for (let r = 0; r < opts.rounds; r++) {
      const k = r % tunnels.length;
      for (const t of [...tunnels.slice(k), ...tunnels.slice(0, k)]) await slice(t, t.clients, t.acc, opts.sliceMs);
    }
    const mid = await Promise.all(tunnels.map((t) => auditMetrics(t)));
    // One session alone: what a single agent waits for (in strict, one fsync per call).
    for (let r = 0; r < opts.rounds; r++) {
      const k = r % tunnels.length;
      for (const t of [...tunnels.slice(k), ...tunnels.slice(0, k)]) await slice(t, t.clients.slice(0, 1), t.one, opts.sliceMs / 2);
    }
    const end = await Promise.all(tunnels.map((t) => auditMetrics(t)));
    tunnels.forEach((t, i) => {
      t.after = mid[i];
      t.end = end[i];
    });
    for (const t of tunnels) {
      const after = t.after;
      const lat = t.acc.latencies.sort((a, b) => a - b);
      const lat1 = t.one.latencies.sort((a, b) => a - b);
      out.modes[t.mode] = {
        rate: (t.acc.calls / t.acc.elapsedMs) * 1000,
        p50: quantile(lat, 0.5),
        p99: quantile(lat, 0.99),
        rate1: (t.one.calls / t.one.elapsedMs) * 1000,
        p50at1: quantile(lat1, 0.5),
        p99at1: quantile(lat1, 0.99),
        recordsPerSyncAt1: (t.end.records - t.after.records) / (t.end.syncs - t.after.syncs),
        calls: t.acc.calls,
        recordsPerSync: (after.records - t.before.records) / (after.syncs - t.before.syncs),
        available: after.available === 1,
      };
    }
    const off = out.modes.off?.rate;
    const strict = out.modes.strict?.rate;
    out.ratio = strict / off;
    out.met = out.ratio >= GOAL;
  } catch (err) {
    out.failed = oneLine(err);
  } finally {
    for (const t of tunnels) {
      await Promise.all(t.clients.map((c) => withTimeout(c.close(), 5000, 'close').catch(() => undefined)));
      await stopProcess(t.connector, 3000);
      await stopProcess(t.relay, 3000);
    }
    killAllGroups();
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');

/** printRelayAudit prints the figures of {@link benchRelayAudit} as a Markdown table and the goal's verdict. */
export function printRelayAudit(r) {
  const { opts } = r;
  console.log('\n## Relay audit trail');
  console.log(
    `tools/call "echo" through relay + connector processes, ${opts.sessions} concurrent agent sessions (one call in flight each, one stdio server per session); ` +
      `the three tunnels run side by side and are measured in ${opts.rounds} rounds of interleaved ${opts.sliceMs} ms slices after ${opts.warmup} warm-up calls per session. ` +
      'Each call writes two records (request, response); checkpoints signed with Ed25519 every 1000 records.',
  );
  if (r.failed) {
    console.log(`failed: ${r.failed}`);
    return;
  }
  console.log('');
  console.log(`| audit.durability | calls/s @${opts.sessions} | vs off | p50 / p99 ms @${opts.sessions} | records per fsync @${opts.sessions} | calls/s @1 | p50 / p99 ms @1 | records per fsync @1 |`);
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const m of MODES) {
    const x = r.modes[m];
    if (!x) continue;
    const vs = m === 'off' ? '100 %' : `${Math.round((x.rate / r.modes.off.rate) * 100)} %`;
    const perSync = (v) => (m === 'off' ? '–' : f2(v));
    console.log(`| ${m} | ${f0(x.rate)} | ${vs} | ${f2(x.p50)} / ${f2(x.p99)} | ${perSync(x.recordsPerSync)} | ${f0(x.rate1)} | ${f2(x.p50at1)} / ${f2(x.p99at1)} | ${perSync(x.recordsPerSyncAt1)} |`);
  }
  console.log(
    `\ngoal: strict ≥ ${GOAL * 100} % of audit-off calls/s at ${opts.sessions} sessions — ${Math.round(r.ratio * 100)} %: ${r.met ? 'met' : 'NOT met'}` +
      (opts.sessions !== 32 ? ` (quick run: ${opts.sessions} sessions, the goal is stated for 32)` : ''),
  );
  console.log('(off = records written and chained but never fsynced while running (no fsync to count), calls not held; strict = each call forwarded only after its request record is fsynced, group commit)');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  printRelayAudit(await benchRelayAudit({ quick: process.argv.includes('--quick') }));
}
