// Renewal figures: how many POST /v1/renew the relay signs per second, and what a burst of them
// does to tools/call latency on a live session, both measured in this run. A real relay and
// connector (`switchboard relay` / `switchboard connector` processes; relay.yaml holds an issuer),
// one agent session (@switchboard/agent-sdk) calling "echo" one call at a time, and R renewers in
// this process, each renewing with the SVID it got last (a fresh P-256 key and CSR each time, as
// workloads do). Steady and burst slices alternate, so drift on the machine falls on both alike.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CLI, freePort, killAllGroups, ms, now, oneLine, quantile, serverCommand, startProcess, stopProcess, waitForPort, withTimeout } from './lib/processes.mjs';

const TD = 'example.org';
const AGENT_ID = `spiffe://${TD}/agent/bench`;
const CONNECTOR_ID = `spiffe://${TD}/connector/bench`;
const QUIET = { env: { LOG_LEVEL: 'warn' } };

/** benchRenewal measures renewals/s and the tools/call p50/p99 with and without a renewal burst. */
export async function benchRenewal({ quick = false } = {}) {
  const opts = quick ? { renewers: 4, rounds: 1, sliceMs: 500 } : { renewers: 8, rounds: 3, sliceMs: 2000 };
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-renew-'));
  const out = { opts };
  let relay;
  let connector;
  let client;
  try {
    const sdk = await import('@switchboard/agent-sdk');
    const { createTestCA } = await import('@switchboard/pki/testing');
    const ca = await createTestCA({ trustDomain: TD });
    const issuer = join(dir, 'pki');
    await ca.ca.save(issuer);
    const ids = {};
    for (const [name, id] of [['relay', `spiffe://${TD}/relay/bench`], ['connector', CONNECTOR_ID], ['agent', AGENT_ID]]) {
      ids[name] = join(dir, 'ids', name);
      await ca.writeIdentity(ids[name], await ca.issue(id));
    }
    await writeFile(join(dir, 'policy.yaml'), `trustDomain: ${TD}\nservers:\n  echo: { connectors: [${CONNECTOR_ID}] }\nrules:\n  - id: bench-echo\n    agents: [${AGENT_ID}]\n    servers: [echo]\n    tools: { allow: [echo] }\n`);
    const port = await freePort();
    await writeFile(
      join(dir, 'relay.yaml'),
      `listen: 127.0.0.1:${port}\nidentity: ${ids.relay}\npolicy: ${join(dir, 'policy.yaml')}\naudit: { path: ${join(dir, 'audit.log')}, durability: batched, signingKey: none }\nrenewal: { issuer: ${issuer}, ttl: 1h }\n`,
    );
    const fixture = await serverCommand(dir);
    await writeFile(join(dir, 'connector.yaml'), `relays: [wss://127.0.0.1:${port}]\nidentity: ${ids.connector}\nservers:\n  echo: { command: ${JSON.stringify(process.execPath)}, args: ${JSON.stringify(fixture.args)} }\n`);
    relay = startProcess('relay', process.execPath, [CLI, 'relay', '--config', join(dir, 'relay.yaml')], QUIET);
    await waitForPort(port, relay, 20_000);
    connector = startProcess('connector', process.execPath, [CLI, 'connector', '--config', join(dir, 'connector.yaml')], QUIET);
    const url = `wss://127.0.0.1:${port}`;
    const identity = await sdk.AgentIdentity.fromDirectory(ids.agent);
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        client = await withTimeout(sdk.connect({ relay: url, server: 'echo', identity }), 15_000, 'connect');
        break;
      } catch (err) {
        if (Date.now() > deadline || relay.exited || connector.exited) throw new Error(`no session: ${oneLine(err)}`);
        await sleep(200);
      }
    }
    let seq = 0;
    const call = async () => {
      const message = `r-${seq++}`;
      const r = await client.callTool({ name: 'echo', arguments: { message } }, undefined, { timeout: 10_000 });
      if (r.content?.[0]?.text !== `echo: ${message}`) throw new Error(`echo failed: ${JSON.stringify(r).slice(0, 200)}`);
    };
    for (let i = 0; i < 200; i++) await call();
    // Renewer identities: one SVID each, renewed with the newest one every time, in a worker thread
    // so their key generation does not sit on the agent's event loop.
    const renewerIds = [];
    for (let i = 0; i < opts.renewers; i++) {
      const svid = await ca.issue(`spiffe://${TD}/agent/renewer-${i}`);
      renewerIds.push({ cert: svid.certificatesPem(), key: svid.privateKeyPem() });
    }
    const worker = new Worker(new URL(import.meta.url), { workerData: { url, bundle: ca.bundlePem, ids: renewerIds } });
    const ask = (msg) => new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.postMessage(msg);
    });
    await ask({ ping: true });
    const steady = [];
    const burst = [];
    let renewals = 0;
    let renewMs = 0;
    const calls = async (lat, endAt) => {
      while (now() < endAt) {
        const s = now();
        await call();
        lat.push(ms(now() - s));
      }
    };
    for (let r = 0; r < opts.rounds; r++) {
      await calls(steady, now() + BigInt(opts.sliceMs) * 1_000_000n);
      const t0 = now();
      const endAt = t0 + BigInt(opts.sliceMs) * 1_000_000n;
      const [, done] = await Promise.all([calls(burst, endAt), ask({ forMs: opts.sliceMs })]);
      if (done.error) throw new Error(`renewer: ${done.error}`);
      renewMs += ms(now() - t0);
      renewals += done.renewals;
    }
    await worker.terminate();
    steady.sort((a, b) => a - b);
    burst.sort((a, b) => a - b);
    out.renewalsPerSecond = (renewals / renewMs) * 1000;
    out.renewals = renewals;
    out.steady = { calls: steady.length, p50: quantile(steady, 0.5), p99: quantile(steady, 0.99) };
    out.burst = { calls: burst.length, p50: quantile(burst, 0.5), p99: quantile(burst, 0.99) };
  } catch (err) {
    out.failed = oneLine(err);
  } finally {
    await client?.close().catch(() => undefined);
    if (connector) await stopProcess(connector, 3000);
    if (relay) await stopProcess(relay, 3000);
    killAllGroups();
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');

/** printRenewal prints {@link benchRenewal}'s figures. */
export function printRenewal(r) {
  const { opts } = r;
  console.log('\n## Identity renewal');
  console.log(
    `POST /v1/renew against a relay process holding an issuer: ${opts.renewers} renewers, each renewing with the SVID it got last (fresh P-256 key and CSR each time, made in a worker thread of the bench process), ` +
      `while one agent session calls tools/call "echo" through relay + connector processes, one call at a time; ${opts.rounds} rounds of a ${opts.sliceMs} ms steady slice then a ${opts.sliceMs} ms burst slice.`,
  );
  if (r.failed) {
    console.log(`failed: ${r.failed}`);
    return;
  }
  console.log(`renewals/s the relay signed: ${Math.round(r.renewalsPerSecond)} (${r.renewals} in the burst slices)`);
  console.log('');
  console.log('| tools/call | calls | p50 ms | p99 ms |');
  console.log('|---|---:|---:|---:|');
  console.log(`| steady | ${r.steady.calls} | ${f2(r.steady.p50)} | ${f2(r.steady.p99)} |`);
  console.log(`| during the renewal burst | ${r.burst.calls} | ${f2(r.burst.p50)} | ${f2(r.burst.p99)} |`);
  console.log(`p99 during the burst vs steady: ${f2(r.burst.p99 / r.steady.p99)}×`);
}

// The renewers' thread: on { forMs }, every renewer renews in a loop for that long; answers the count.
if (!isMainThread) {
  const { RelayTls, renewOverRelay } = await import('@switchboard/protocol');
  const { TrustBundle, X509Svid } = await import('@switchboard/pki');
  const renewers = workerData.ids.map(({ cert, key }) => {
    const svid = X509Svid.parse(cert, key);
    return { identity: { svid, bundle: TrustBundle.fromPem(svid.id.trustDomain, workerData.bundle) } };
  });
  const untrusted = (m) => new Error(m);
  parentPort.on('message', async (msg) => {
    if (msg.ping) return parentPort.postMessage({ ok: true });
    const endAt = Date.now() + msg.forMs;
    try {
      const counts = await Promise.all(
        renewers.map(async (w) => {
          let n = 0;
          while (Date.now() < endAt) {
            w.identity = await renewOverRelay(workerData.url, new RelayTls(w.identity, { untrusted, resumption: false }));
            n++;
          }
          return n;
        }),
      );
      parentPort.postMessage({ renewals: counts.reduce((a, b) => a + b, 0) });
    } catch (err) {
      parentPort.postMessage({ error: String(err?.message ?? err) });
    }
  });
}

if (isMainThread && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  printRenewal(await benchRenewal({ quick: process.argv.includes('--quick') }));
}
