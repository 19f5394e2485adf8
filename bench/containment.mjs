// The cost of containment, measured in this run: the same echo fixture behind one connector as
// three servers — `plain` (egress: any, filesystem: any: no sandbox), `contained` (the default: a
// bubblewrap sandbox with no network) and `egress` (contained with an egress list: the per-session
// proxy and DNS catcher, and socat inside). A real relay and connector in this process, the agent
// SDK as the agent. Figures: session setup (connect + initialize, a fresh backend process each
// time) and tools/call p50 on a live session, interleaved so drift falls on all alike.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { ms, now, oneLine, quantile, serverCommand, writeIdentities } from './lib/processes.mjs';

const TD = 'example.org';
const AGENT_ID = `spiffe://${TD}/agent/bench`;
const CONNECTOR_ID = `spiffe://${TD}/connector/bench`;
const SERVERS = ['plain', 'contained', 'egress'];

function hasBwrap() {
  try {
    execFileSync('bwrap', ['--version'], { stdio: 'ignore' });
    execFileSync('socat', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** benchContainment measures session setup and tools/call p50 with and without the sandbox. */
export async function benchContainment({ quick = false } = {}) {
  const opts = quick ? { setups: 6, calls: 300 } : { setups: 40, calls: 3000 };
  const out = { opts };
  if (!hasBwrap()) return { ...out, skipped: 'bubblewrap or socat is not installed (apt-get install bubblewrap socat)' };
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-contain-'));
  let relay;
  let connector;
  try {
    const sdk = await import('@switchboard/agent-sdk');
    const { startRelay } = await import('@switchboard/relay');
    const { parseConnectorConfig, startConnector } = await import('@switchboard/connector');
    const { createTestCA } = await import('@switchboard/pki/testing');
    const ca = await createTestCA({ trustDomain: TD });
    const ids = await writeIdentities(ca, dir, [['relay', `spiffe://${TD}/relay/bench`], ['connector', CONNECTOR_ID], ['agent', AGENT_ID]]);
    const policy = join(dir, 'policy.yaml');
    await writeFile(policy, `trustDomain: ${TD}\nservers:\n${SERVERS.map((s) => `  ${s}: { connectors: [${CONNECTOR_ID}], pinning: { mode: off } }\n`).join('')}rules:\n  - id: bench\n    agents: [${AGENT_ID}]\n    servers: [${SERVERS.join(', ')}]\n    tools: { allow: [echo] }\n`);
    relay = await startRelay({ listen: '127.0.0.1:0', identity: ids.relay, policy, audit: { path: join(dir, 'audit.log'), durability: 'batched', signingKey: 'none' } });
    const fixture = await serverCommand(dir);
    const base = { command: process.execPath, args: fixture.args, filesystem: fixture.hook ? { read: [dir] } : undefined };
    const config = parseConnectorConfig({
      relays: [relay.url],
      identity: ids.connector,
      servers: {
        plain: { ...base, egress: 'any', filesystem: 'any' },
        contained: { ...base },
        egress: { ...base, egress: ['api.example.com', '10.0.0.0/8:5432'] },
      },
    }, { baseDir: dir });
    connector = await startConnector(config, { drainTimeoutMs: 0 });
    await connector.ready();

    const setup = Object.fromEntries(SERVERS.map((s) => [s, []]));
    for (let i = 0; i < opts.setups; i++) {
      for (const s of SERVERS) {
        const t0 = now();
        const client = await sdk.connect({ relay: relay.url, server: s, identity: ids.agent });
        setup[s].push(ms(now() - t0));
        await client.close();
      }
    }
    const call = Object.fromEntries(SERVERS.map((s) => [s, []]));
    const clients = {};
    for (const s of SERVERS) clients[s] = await sdk.connect({ relay: relay.url, server: s, identity: ids.agent });
    const slice = 100;
    for (let done = 0; done < opts.calls; done += slice) {
      for (const s of SERVERS) {
        for (let i = 0; i < slice; i++) {
          const t0 = now();
          await clients[s].callTool({ name: 'echo', arguments: { text: 'x' } });
          call[s].push(ms(now() - t0));
        }
      }
    }
    for (const s of SERVERS) await clients[s].close();
    for (const s of SERVERS) {
      setup[s].sort((a, b) => a - b);
      call[s].sort((a, b) => a - b);
      out[s] = { setupP50: quantile(setup[s], 0.5), setupP99: quantile(setup[s], 0.99), callP50: quantile(call[s], 0.5), callP99: quantile(call[s], 0.99) };
    }
    // The sandbox alone: bwrap starting /usr/bin/true against starting it directly.
    const spawnCost = (cmd, args) => {
      const xs = [];
      for (let i = 0; i < (quick ? 10 : 50); i++) {
        const t0 = now();
        execFileSync(cmd, args, { stdio: 'ignore' });
        xs.push(ms(now() - t0));
      }
      return quantile(xs.sort((a, b) => a - b), 0.5);
    };
    out.spawnTrue = spawnCost('/usr/bin/true', []);
    out.spawnBwrap = spawnCost('bwrap', ['--unshare-all', '--die-with-parent', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64', '--symlink', 'usr/bin', '/bin', '--proc', '/proc', '--dev', '/dev', '--', '/usr/bin/true']);
  } catch (err) {
    out.error = oneLine(err);
  } finally {
    await connector?.close().catch(() => undefined);
    await relay?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

const f = (x) => (x === undefined ? '—' : x.toFixed(2));
const fd = (x) => (x === undefined ? '—' : `${x >= 0 ? '+' : ''}${x.toFixed(3)}`);

/** printContainment prints the table and the goals (setup ≤ +30 ms, tools/call p50 ≤ +0.02 ms). */
export function printContainment(r) {
  console.log('');
  console.log('## Containment');
  console.log('');
  console.log(`The same echo server three ways behind one connector, ${r.opts.setups} fresh sessions and ${r.opts.calls} calls each, interleaved: plain (egress: any, filesystem: any), contained (the default: bubblewrap, no network), egress (contained with an egress list: proxy, DNS catcher, socat).`);
  if (r.skipped) return console.log(`skipped: ${r.skipped}`);
  if (r.error) return console.log(`failed: ${r.error}`);
  console.log('');
  console.log('| server | setup p50 ms | setup p99 ms | tools/call p50 ms | tools/call p99 ms |');
  console.log('|---|---:|---:|---:|---:|');
  for (const s of SERVERS) console.log(`| ${s} | ${f(r[s].setupP50)} | ${f(r[s].setupP99)} | ${f(r[s].callP50)} | ${f(r[s].callP99)} |`);
  console.log('');
  console.log(`the sandbox alone: bwrap starting /usr/bin/true ${f(r.spawnBwrap)} ms, /usr/bin/true alone ${f(r.spawnTrue)} ms (p50)`);
  console.log('');
  console.log('Goals:');
  for (const s of ['contained', 'egress']) {
    const dSetup = r[s].setupP50 - r.plain.setupP50;
    const dCall = r[s].callP50 - r.plain.callP50;
    console.log(`- ${s}: session setup p50 ≤ +30 ms over plain: ${fd(dSetup)} ms → ${dSetup <= 30 ? 'met' : 'NOT met'}`);
    console.log(`- ${s}: tools/call p50 ≤ +0.02 ms over plain: ${fd(dCall)} ms → ${dCall <= 0.02 ? 'met' : 'NOT met'}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) printContainment(await benchContainment({ quick: process.argv.includes('--quick') }));
