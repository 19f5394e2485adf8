// Tunnel figures: an MCP `tools/call` round trip (p50, p99), calls/s with 1 and with 32
// concurrent sessions, and session setup time, through each way of reaching one stdio MCP server
// (test/fixtures/stdio-crash-server.mjs, tool `echo`), all measured in this run by the same load
// generator, with the SDK `Client` in this process:
//   direct              the SDK Client + StdioClientTransport spawning the server (the baseline);
//   supergateway-ws     supergateway --outputTransport ws (one server process shared by all clients);
//   supergateway-shttp  supergateway --outputTransport streamableHttp --stateful (a process per session);
//   mcp-proxy           mcp-proxy's Streamable HTTP endpoint (a process per session);
//   switchboard         relay + connector as separate processes, agents via @switchboard/agent-sdk
//                       connect() (mutual TLS, two hops, policy; a process per session).
// Then the relay's RSS per idle agent session (raw wss clients, a Streamable-HTTP backend so idle
// sessions spawn nothing). Every spawned process is killed at the end; every loop is bounded.
import { spawnSync } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import WebSocket from 'ws';
import {
  CLI,
  ROOT,
  describeExit,
  freePort,
  killAllGroups,
  median,
  ms,
  now,
  oneLine,
  quantile,
  serverCommand,
  startProcess,
  stopProcess,
  waitForPort,
  withTimeout,
} from './lib/processes.mjs';

// The SDK's WebSocketClientTransport uses the global WebSocket, which Node 20 lacks: give it ws's.
if (typeof globalThis.WebSocket === 'undefined') globalThis.WebSocket = WebSocket;

const require = createRequire(import.meta.url);
const SUPERGATEWAY = join(dirname(require.resolve('supergateway/package.json')), 'dist/index.js');
const MCP_PROXY = join(dirname(require.resolve('mcp-proxy/package.json')), 'dist/bin/mcp-proxy.mjs');

export const TARGETS = ['direct', 'supergateway-ws', 'supergateway-shttp', 'mcp-proxy', 'bare-chain', 'inspect-floor', 'switchboard', 'switchboard-pool', 'switchboard-shared', 'http-direct', 'switchboard-http'];
/** POOL_SIZE is the warm pool of the switchboard-pool target (connector.yaml `pool.size`). */
const POOL_SIZE = 4;
const SESSIONS = 32;
const CALL_TIMEOUT_MS = 10_000;
const MAX_CALLS_PER_SESSION = 2_000_000; // a bound on every load loop besides its duration
const TD = 'example.org';
const AGENT_ID = `spiffe://${TD}/agent/bench`;
const CONNECTOR_ID = `spiffe://${TD}/connector/bench`;

const shellLine = (cmd) => [cmd.command, ...cmd.args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');

// ---- the load generator ---------------------------------------------------------------------

const ECHO = { name: 'echo', arguments: { message: 'hello' } };

async function call(client) {
  const r = await client.callTool(ECHO, undefined, { timeout: CALL_TIMEOUT_MS });
  if (r.isError) throw new Error(`echo failed: ${JSON.stringify(r.content).slice(0, 200)}`);
  return r;
}

async function callLoop(client, endAt, latencies) {
  let n = 0;
  while (n < MAX_CALLS_PER_SESSION && now() < endAt) {
    const t0 = now();
    await call(client);
    latencies.push(ms(now() - t0));
    n++;
  }
  return n;
}

/** measureSlice runs every client's sequential call loop for `durationMs`, adding to `acc`. */
async function measureSlice(clients, durationMs, acc) {
  const t0 = now();
  const endAt = t0 + BigInt(durationMs) * 1_000_000n;
  const counts = await withTimeout(
    Promise.all(clients.map((c) => callLoop(c, endAt, acc.latencies))),
    durationMs + CALL_TIMEOUT_MS + 5000,
    'load',
  );
  acc.elapsedMs += ms(now() - t0);
  acc.calls += counts.reduce((a, b) => a + b, 0);
}

function summary(acc) {
  const sorted = acc.latencies.sort((a, b) => a - b);
  return { rate: (acc.calls / acc.elapsedMs) * 1000, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) };
}

async function warmUp(clients, callsPerSession) {
  await withTimeout(
    Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < callsPerSession; i++) await call(c);
      }),
    ),
    90_000,
    'warm-up',
  );
}

/**
 * runTargets measures every started target phase by phase, interleaved: each measurement is cut
 * into rounds of short slices and the targets take turns within a round, so load that other jobs
 * put on the shared machine falls on every target alike (a sequential run let it fall on whichever
 * target happened to be running). A target that fails gets its reason in `rows` and drops out.
 */
async function runTargets(targets, opts, rows) {
  const st = new Map(targets.map((t) => [t, { clients: [], setups: [], fresh: [], one: newAcc(), inflight: newAcc(), many: newAcc() }]));
  const live = () => targets.filter((t) => !rows[t.name]);
  const step = async (t, what, fn) => {
    if (rows[t.name]) return;
    try {
      await fn(st.get(t));
    } catch (err) {
      rows[t.name] = { failed: `${what}: ${oneLine(err)}` };
      await closeClients(st.get(t).clients);
    }
  };
  const open = async (t, s, timed) => {
    const t0 = now();
    const c = await withTimeout(t.open(), 30_000, 'session setup');
    if (timed) s.setups.push(ms(now() - t0));
    s.clients.push(c);
  };
  const rounds = async (phase, clientsOf) => {
    for (let r = 0; r < opts.rounds; r++) {
      const order = live();
      const k = r % Math.max(1, order.length);
      for (const t of [...order.slice(k), ...order.slice(0, k)]) {
        await step(t, `measuring ${phase}`, async (s) => {
          // The CPU the target's own relay and connector spend in the slice (no other target runs then).
          const pids = t.pids?.();
          const before = pids ? await cpuOf(pids) : undefined;
          const calls = s[phase].calls;
          await measureSlice(clientsOf(s), opts.sliceMs, s[phase]);
          if (before) {
            const after = await cpuOf(pids);
            const cpu = (s[phase].cpu ??= { relay: 0, connector: 0, calls: 0 });
            cpu.relay += after.relay - before.relay;
            cpu.connector += after.connector - before.connector;
            cpu.calls += s[phase].calls - calls;
          }
        });
      }
    }
  };
  try {
    // Gateways, relay and connector are long-running processes: warm their code paths on a
    // throwaway session first, as a deployment that has been up for a while would be (without
    // this, p50 through a relay and connector fresh from start is 2–3× its warm value). The
    // sessions measured below still get fresh server processes where the target spawns per session.
    for (const t of live()) {
      if (!t.longLived) continue;
      await step(t, 'gateway warm-up', async () => {
        const c = await withTimeout(t.open(), 30_000, 'session setup');
        try {
          const end = Date.now() + opts.gatewayWarmupMs;
          for (let i = 0; i < opts.gatewayWarmup && Date.now() < end; i++) await call(c);
        } finally {
          await closeClients([c]);
        }
      });
    }
    // Setup time: sessions opened one after another, the targets taking turns (median per target).
    for (let i = 0; i < opts.timedSetups; i++) {
      for (const t of live()) await step(t, 'session setup', (s) => open(t, s, true));
    }
    for (const t of live()) {
      await step(t, 'first call', async (s) => {
        const r = await call(s.clients[0]);
        if (r.content?.[0]?.text !== 'echo: hello') throw new Error(`unexpected echo result ${JSON.stringify(r.content)}`);
        // A new session's first calls, timed: what a short-lived session sees.
        for (let i = 0; i < opts.freshCalls; i++) {
          const t0 = now();
          await call(s.clients[0]);
          s.fresh.push(ms(now() - t0));
        }
        // Then warm it to a steady state: every process on the path (a fresh server process in
        // direct, supergateway-shttp and switchboard) has had its hot code optimised by V8.
        await warmUp([s.clients[0]], opts.steadyWarmup);
      });
    }
    await rounds('one', (s) => [s.clients[0]]);
    // 32 calls in flight on that one session: every target then has one server process, and
    // this is how PERFORMANCE-NOTES measured "14k/s with 32 in flight" for direct stdio.
    await rounds('inflight', (s) => Array.from({ length: SESSIONS }, () => s.clients[0]));

    // The other sessions, four at a time, untimed; each warms up as much as the single one did (a
    // process-per-session target has 32 fresh server processes V8 has not optimised yet).
    for (const t of live()) {
      await step(t, `opening ${SESSIONS} sessions`, async (s) => {
        while (s.clients.length < SESSIONS) {
          await Promise.all(Array.from({ length: Math.min(4, SESSIONS - s.clients.length) }, () => open(t, s, false)));
        }
        await warmUp(s.clients, opts.warmup);
      });
    }
    await rounds('many', (s) => s.clients);
    for (const t of live()) {
      const s = st.get(t);
      const one = summary(s.one);
      const many = summary(s.many);
      const inflight = summary(s.inflight);
      const fresh = s.fresh.sort((a, b) => a - b);
      rows[t.name] = {
        p50: one.p50,
        p99: one.p99,
        rate1: one.rate,
        rate32: many.rate,
        rateInflight: inflight.rate,
        cpuInflight: s.inflight.cpu?.calls ? { relay: s.inflight.cpu.relay / s.inflight.cpu.calls, connector: s.inflight.cpu.connector / s.inflight.cpu.calls } : undefined,
        p50at32: many.p50,
        p99at32: many.p99,
        p50fresh: quantile(fresh, 0.5),
        setup: median(s.setups),
      };
    }
  } finally {
    for (const s of st.values()) await closeClients(s.clients);
  }
}

// /proc/<pid>/stat counts CPU in clock ticks (USER_HZ, 100 on Linux): µs per tick.
const TICK_US = 10_000;

/** cpuOf reads the CPU (user + system, µs) the `relay` and `connector` processes have used so far. */
async function cpuOf(pids) {
  const one = async (pid) => {
    const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_US;
  };
  return { relay: await one(pids.relay), connector: await one(pids.connector) };
}

function newAcc() {
  return { latencies: [], calls: 0, elapsedMs: 0 };
}

async function closeClients(clients) {
  const close = async (c) => {
    const transport = c.transport;
    // Streamable HTTP: end the session on the server too, so gateways free its process.
    if (typeof transport?.terminateSession === 'function') await transport.terminateSession().catch(() => undefined);
    await c.close().catch(() => undefined);
  };
  for (let i = 0; i < clients.length; i += 8) {
    await withTimeout(Promise.all(clients.slice(i, i + 8).map(close)), 10_000, 'session close').catch(() => undefined);
  }
  clients.length = 0;
}

async function sdkClient(transport) {
  const client = new Client({ name: 'switchboard-bench', version: '1.0.0' });
  await client.connect(transport, { timeout: 15_000 });
  // StreamableHTTPClientTransport: every fetch adds an abort listener to the transport's one
  // signal, dropped only when the request is garbage-collected; thousands of calls would print a
  // "possible memory leak" warning per call (the connector's HTTP backend does the same).
  const signal = transport._abortController?.signal;
  if (signal) setMaxListeners(0, signal);
  return client;
}

// ---- targets --------------------------------------------------------------------------------

function directTarget(cmd) {
  return {
    name: 'direct',
    async start() {},
    async open() {
      const transport = new StdioClientTransport({ command: cmd.command, args: cmd.args, stderr: 'pipe' });
      let tail = '';
      transport.stderr?.on('data', (chunk) => {
        tail = (tail + chunk.toString()).slice(-2000);
      });
      try {
        return await sdkClient(transport);
      } catch (err) {
        const why = tail.trim().split('\n').slice(-3).join(' / ');
        throw new Error(`${oneLine(err)}${why ? ` (server stderr: ${why.slice(0, 300)})` : ''}`);
      }
    },
    async stop() {},
  };
}

function supergatewayTarget(name, cmd, output) {
  let proc;
  let port;
  const extra = output === 'ws' ? ['--outputTransport', 'ws'] : ['--outputTransport', 'streamableHttp', '--stateful'];
  return {
    name,
    longLived: true,
    async start() {
      port = await freePort();
      // supergateway has no host option: it listens on every interface; we only dial 127.0.0.1.
      proc = startProcess(name, process.execPath, [SUPERGATEWAY, '--stdio', shellLine(cmd), ...extra, '--port', String(port), '--logLevel', 'none']);
      await waitForPort(port, proc);
    },
    open:
      output === 'ws'
        ? () => sdkClient(new WebSocketClientTransport(new URL(`ws://127.0.0.1:${port}/message`)))
        : () => sdkClient(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`))),
    stop: () => stopProcess(proc),
  };
}

function mcpProxyTarget(cmd) {
  let proc;
  let port;
  return {
    name: 'mcp-proxy',
    longLived: true,
    async start() {
      port = await freePort();
      proc = startProcess('mcp-proxy', process.execPath, [MCP_PROXY, '--host', '127.0.0.1', '--port', String(port), '--server', 'stream', '--', cmd.command, ...cmd.args]);
      await waitForPort(port, proc);
    },
    open: () => sdkClient(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`))),
    stop: () => stopProcess(proc),
  };
}

/** switchboardAvailable says why the tunnel cannot be measured yet, or returns the agent SDK. */
async function switchboardAvailable() {
  let sdk;
  try {
    sdk = await import('@switchboard/agent-sdk');
  } catch (err) {
    return { reason: `@switchboard/agent-sdk does not load (${oneLine(err)})` };
  }
  if (typeof sdk.connect !== 'function') return { reason: '@switchboard/agent-sdk exports no connect()' };
  for (const sub of ['relay', 'connector']) {
    const r = spawnSync(process.execPath, [CLI, sub, '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    // An unknown subcommand with --help prints the top-level help and exits 0: require the
    // subcommand's own usage line.
    if (r.status !== 0 || !new RegExp(`^Usage: (switchboard )?${sub}\\b`, 'm').test(r.stdout)) {
      const why = r.status === 0 ? 'no such subcommand yet' : (r.stderr || r.stdout || r.error?.message || `exit ${r.status}`).trim().split('\n')[0].slice(0, 200);
      return { reason: `\`switchboard ${sub} --help\` fails (${why})` };
    }
  }
  return { sdk };
}

/** switchboardWorld writes a PKI, policy and configs, and starts a relay and a connector. */
// The tunnel figures are the tunnel's: the relay hashes, chains and writes every record but does
// not fsync (`off`); what batched and strict durability cost is measured by bench/audit-relay.mjs
// in the same `pnpm bench` run.
const TUNNEL_AUDIT = 'off';

async function startSwitchboard(dir, cmd, auditDurability = TUNNEL_AUDIT) {
  const { createTestCA } = await import('@switchboard/pki/testing');
  const ca = await createTestCA({ trustDomain: TD });
  const ids = {};
  for (const [name, id] of [
    ['relay', `spiffe://${TD}/relay/bench`],
    ['connector', CONNECTOR_ID],
    ['agent', AGENT_ID],
  ]) {
    ids[name] = join(dir, 'ids', name);
    await ca.writeIdentity(ids[name], await ca.issue(id));
  }
  const httpPort = await freePort();
  const http = startProcess('http-mcp-server', cmd.command, cmd.httpArgs, { env: { PORT: String(httpPort) } });
  const port = await freePort();
  const adminPort = await freePort();
  await writeFile(
    join(dir, 'policy.yaml'),
    `trustDomain: ${TD}
servers:
  echo: { connectors: [${CONNECTOR_ID}] }
  echo-pool: { connectors: [${CONNECTOR_ID}] }
  echo-shared: { connectors: [${CONNECTOR_ID}] }
  idle: { connectors: [${CONNECTOR_ID}] }
rules:
  - id: bench-echo
    agents: [${AGENT_ID}]
    servers: [echo, echo-pool, echo-shared, idle]
    tools: { allow: [echo] }
`,
  );
  await writeFile(
    join(dir, 'relay.yaml'),
    `listen: 127.0.0.1:${port}
identity: ${ids.relay}
policy: ${join(dir, 'policy.yaml')}
audit: { path: ${join(dir, 'audit.log')}, durability: ${auditDurability}, signingKey: none }
admin: { listen: 127.0.0.1:${adminPort} }
# Every bench client comes from 127.0.0.1, thousands of sessions at once: lift the per-source caps.
limits: { maxConnectionsPerSource: 0, maxHandshakesPerSource: 0 }
`,
  );
  await writeFile(
    join(dir, 'connector.yaml'),
    `relays: [wss://127.0.0.1:${port}]
identity: ${ids.connector}
servers:
  echo: { command: ${JSON.stringify(cmd.command)}, args: ${JSON.stringify(cmd.args)} }
  echo-pool: { command: ${JSON.stringify(cmd.command)}, args: ${JSON.stringify(cmd.args)}, pool: { size: ${POOL_SIZE} } }
  echo-shared: { command: ${JSON.stringify(cmd.command)}, args: ${JSON.stringify(cmd.args)}, isolation: shared }
  idle: { url: http://127.0.0.1:${httpPort}/mcp }
`,
  );
  const relay = startProcess('relay', process.execPath, [CLI, 'relay', '--config', join(dir, 'relay.yaml')]);
  const world = { dir, ca, ids, port, adminPort, httpPort, relay, http, connector: undefined, idleConnectors: [], url: `wss://127.0.0.1:${port}` };
  await waitForPort(port, relay);
  await waitForPort(httpPort, http);
  world.connector = startProcess('connector', process.execPath, [CLI, 'connector', '--config', join(dir, 'connector.yaml')]);
  return world;
}

function switchboardTarget(sdk, world, name = 'switchboard', server = 'echo') {
  // A long-lived agent loads its identity once (one TLS context for all its sessions).
  let identity = world.ids.agent;
  const open = () => sdk.connect({ relay: world.url, server, identity });
  return {
    name,
    longLived: true,
    async start() {
      if (typeof sdk.AgentIdentity?.fromDirectory === 'function') identity = await sdk.AgentIdentity.fromDirectory(world.ids.agent);
      // The connector registers asynchronously: retry (bounded) until a session opens.
      const deadline = Date.now() + 20_000;
      let last;
      while (Date.now() < deadline) {
        if (world.relay.exited) throw new Error(describeExit(world.relay));
        if (world.connector.exited) throw new Error(describeExit(world.connector));
        try {
          const c = await withTimeout(open(), 10_000, 'connect');
          await closeClients([c]);
          return;
        } catch (err) {
          last = err;
          await sleep(200);
        }
      }
      throw new Error(`no session through the tunnel within 20 s: ${oneLine(last)}`);
    },
    open,
    pids: () => ({ relay: world.relay.pid, connector: world.connector.pid }),
    async stop() {},
  };
}

/**
 * bareChainTarget is the same topology doing nothing (bench/bare-chain.mjs): a relay and a
 * connector process with mutual TLS on both hops and the same agent SDK, splicing frames with no
 * parsing, policy or audit. Switchboard's added latency and throughput are read against it.
 * With `inspect` it is the `inspect-floor`: the same chain doing only what an inspecting relay
 * cannot skip (JSON.parse both ways, an allow-set lookup, two hash-chained audit records per call).
 */
function bareChainTarget(sdk, world, cmd, inspect = false) {
  let relay;
  let connector;
  let port;
  let identity = world.ids.agent;
  const open = () => sdk.connect({ relay: `wss://127.0.0.1:${port}`, server: 'echo', identity, resumption: false });
  return {
    name: inspect ? 'inspect-floor' : 'bare-chain',
    longLived: true,
    async start() {
      port = await freePort();
      const script = join(ROOT, 'bench/bare-chain.mjs');
      const relayArgs = inspect ? ['inspect', join(world.dir, 'inspect-floor-audit.log')] : [];
      relay = startProcess(`${this.name} relay`, process.execPath, [script, 'relay', String(port), world.ids.relay, ...relayArgs]);
      await waitForPort(port, relay);
      const connectorArgs = inspect ? ['inspect'] : [];
      connector = startProcess(`${this.name} connector`, process.execPath, [script, 'connector', `wss://127.0.0.1:${port}`, world.ids.connector, ...connectorArgs, cmd.command, ...cmd.args]);
      if (typeof sdk.AgentIdentity?.fromDirectory === 'function') identity = await sdk.AgentIdentity.fromDirectory(world.ids.agent);
      const deadline = Date.now() + 20_000;
      let last;
      while (Date.now() < deadline) {
        for (const p of [relay, connector]) if (p.exited) throw new Error(describeExit(p));
        try {
          await closeClients([await withTimeout(open(), 10_000, 'connect')]);
          return;
        } catch (err) {
          last = err;
          await sleep(200);
        }
      }
      throw new Error(`no session through the ${this.name} within 20 s: ${oneLine(last)}`);
    },
    open,
    pids: () => ({ relay: relay.pid, connector: connector.pid }),
    async stop() {
      await stopProcess(connector);
      await stopProcess(relay);
    },
  };
}

/** httpDirectTarget is the MCP SDK client calling the Streamable-HTTP fixture directly (the baseline for switchboard-http). */
function httpDirectTarget(world) {
  return {
    name: 'http-direct',
    async start() {},
    open: () => sdkClient(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${world.httpPort}/mcp`))),
    async stop() {},
  };
}

// ---- relay memory per idle session ----------------------------------------------------------

async function vmRssKiB(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

/**
 * idleSessions opens idle agent sessions up to each count in `counts` and reads the relay's VmRSS.
 * The relay CLI is spawned with process.execPath (no shell, no npx), so its pid is the process that
 * holds the sockets.
 */
async function idleSessions(world, counts, timeLimitMs) {
  const ctx = tls.createSecureContext({
    key: await readFile(join(world.ids.agent, 'svid_key.pem')),
    cert: await readFile(join(world.ids.agent, 'svid.pem')),
    ca: await readFile(join(world.ids.agent, 'bundle.pem')),
    minVersion: 'TLSv1.3',
  });
  const url = `${world.url}/v1/agent/idle`;
  const sockets = [];
  const closed = new Map(); // close code and reason → sessions the far side closed
  let counting = false;
  const openOne = () =>
    new Promise((resolveOpen, reject) => {
      const ws = new WebSocket(url, 'mcp', {
        secureContext: ctx,
        // The relay's SVID names a SPIFFE ID (URI SAN), not a host name; the CA check still applies.
        checkServerIdentity: () => undefined,
        perMessageDeflate: false,
        handshakeTimeout: 15_000,
      });
      ws.once('open', () => {
        ws.removeAllListeners('error');
        ws.on('error', () => undefined);
        ws.once('close', (code, reason) => {
          if (counting) {
            const why = `${code}${reason.length ? ` ${reason.toString().slice(0, 80)}` : ''}`;
            closed.set(why, (closed.get(why) ?? 0) + 1);
          }
        });
        sockets.push(ws);
        resolveOpen();
      });
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`relay answered HTTP ${res.statusCode}`)));
    });
  const openUpTo = async (n, deadline) => {
    let failures = 0;
    let lastErr;
    while (sockets.length < n && Date.now() < deadline) {
      const batch = Math.min(64, n - sockets.length);
      const results = await Promise.allSettled(Array.from({ length: batch }, openOne));
      for (const r of results) if (r.status === 'rejected') (failures++, (lastErr = r.reason));
      if (failures > 20) throw new Error(`idle sessions: ${failures} failed to open (${oneLine(lastErr)})`);
    }
  };
  const results = [];
  try {
    const links = await ensureIdleLinks(world, Math.max(...counts));
    // Warm the relay's allocator and code paths, then let them settle before the baseline.
    await openUpTo(50, Date.now() + 30_000);
    for (const ws of sockets.splice(0)) ws.terminate();
    await sleep(1500);
    const before = await vmRssKiB(world.relay.pid);
    counting = true;
    const start = Date.now();
    const deadline = start + timeLimitMs;
    for (const n of counts) {
      await openUpTo(n, deadline);
      await sleep(1500);
      if (world.relay.exited) throw new Error(describeExit(world.relay));
      const after = await vmRssKiB(world.relay.pid);
      const reached = sockets.length;
      const still = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
      const relaySays = await relayGauge(world.adminPort, 'switchboard_relay_sessions_open');
      // Per session counts only the sessions still open: a session the relay or connector closed
      // holds no memory and must not dilute the figure.
      const held = Math.min(still, relaySays ?? still);
      const closes = [...closed].map(([why, k]) => `${k} × ${why}`).join(', ');
      results.push({ n, reached, open: still, relaySays, links, closes, before, after, perSession: (after - before) / held, seconds: (Date.now() - start) / 1000 });
      if (reached < n) break; // out of time: report what was reached, skip larger counts
    }
    return { before, results };
  } finally {
    counting = false;
    for (const ws of sockets) ws.terminate();
    sockets.length = 0;
  }
}

/** relayGauge reads one unlabelled gauge (e.g. `switchboard_relay_sessions_open`) from the relay's admin listener. */
async function relayGauge(adminPort, name) {
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(await res.text());
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

// A connector carries at most 1,024 sessions per link (its default; connector.yaml has no key for
// it), so N idle sessions need ceil(N / 1,000) links: extra connector processes serving `idle`,
// started before the baseline is read. The relay puts each new session on its least busy link.
async function ensureIdleLinks(world, maxCount) {
  const links = Math.ceil(maxCount / 1000);
  const config = join(world.dir, 'connector-idle.yaml');
  await writeFile(config, `relays: [${world.url}]\nidentity: ${world.ids.connector}\nservers:\n  idle: { url: http://127.0.0.1:${world.httpPort}/mcp }\n`);
  while (world.idleConnectors.length < links - 1) {
    world.idleConnectors.push(startProcess(`connector-idle-${world.idleConnectors.length + 1}`, process.execPath, [CLI, 'connector', '--config', config]));
  }
  const deadline = Date.now() + 30_000;
  let up;
  while (Date.now() < deadline) {
    for (const c of world.idleConnectors) if (c.exited) throw new Error(describeExit(c));
    up = await relayGauge(world.adminPort, 'switchboard_relay_links_up');
    if (up === undefined || up >= links) return links;
    await sleep(200);
  }
  throw new Error(`only ${up} of ${links} connector links came up within 30 s`);
}

// ---- the run --------------------------------------------------------------------------------

export async function benchTunnel({ quick = false, idle = true, only } = {}) {
  const opts = quick
    ? { sliceMs: 500, rounds: 2, warmup: 100, freshCalls: 100, steadyWarmup: 300, gatewayWarmup: 1000, gatewayWarmupMs: 2000, timedSetups: 4, idleCounts: [1000], idleTimeLimitMs: 60_000 }
    : { sliceMs: 1000, rounds: 3, warmup: 200, freshCalls: 200, steadyWarmup: 2000, gatewayWarmup: 3000, gatewayWarmupMs: 5000, timedSetups: 8, idleCounts: [1000, 10_000], idleTimeLimitMs: 120_000 };
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-'));
  const out = { opts, rows: {}, idle: undefined, notes: [], auditDurability: TUNNEL_AUDIT };
  let world;
  try {
    const cmd = await serverCommand(dir);
    if (cmd.hook) out.notes.push('test/fixtures cannot resolve the MCP SDK from the workspace root: servers run with a resolve hook (--import), every target alike');
    const targets = [
      directTarget(cmd),
      supergatewayTarget('supergateway-ws', cmd, 'ws'),
      supergatewayTarget('supergateway-shttp', cmd, 'streamableHttp'),
      mcpProxyTarget(cmd),
    ].filter((t) => !only || only.includes(t.name));
    const sw = await switchboardAvailable();
    if (sw.reason) out.rows.switchboard = { unavailable: sw.reason };
    else {
      try {
        world = await startSwitchboard(dir, cmd);
        if (!only || only.includes('bare-chain')) targets.push(bareChainTarget(sw.sdk, world, cmd));
        if (!only || only.includes('inspect-floor')) targets.push(bareChainTarget(sw.sdk, world, cmd, true));
        targets.push(switchboardTarget(sw.sdk, world));
        if (!only || only.includes('switchboard-pool')) targets.push(switchboardTarget(sw.sdk, world, 'switchboard-pool', 'echo-pool'));
        if (!only || only.includes('switchboard-shared')) targets.push(switchboardTarget(sw.sdk, world, 'switchboard-shared', 'echo-shared'));
        // A Streamable-HTTP backend: the SDK client calling it directly, and switchboard in front of it.
        if (!only || only.includes('http-direct')) targets.push(httpDirectTarget(world));
        if (!only || only.includes('switchboard-http')) targets.push(switchboardTarget(sw.sdk, world, 'switchboard-http', 'idle'));
      } catch (err) {
        out.rows.switchboard = { failed: oneLine(err) };
      }
    }
    const started = [];
    try {
      for (const t of targets) {
        try {
          await withTimeout(t.start(), 30_000, `${t.name} start`);
          started.push(t);
        } catch (err) {
          out.rows[t.name] = { failed: oneLine(err) };
        }
      }
      await runTargets(started, opts, out.rows);
    } finally {
      for (const t of targets) await t.stop().catch(() => undefined);
    }
    if (!idle) {
      out.idle = { unavailable: 'not run (idle: false)' };
    } else if (world && !out.rows.switchboard?.failed) {
      try {
        out.idle = await idleSessions(world, opts.idleCounts, opts.idleTimeLimitMs);
      } catch (err) {
        out.idle = { failed: oneLine(err) };
      }
    } else {
      out.idle = { unavailable: out.rows.switchboard?.unavailable ?? out.rows.switchboard?.failed ?? 'switchboard did not run' };
    }
  } finally {
    if (world) for (const p of [...world.idleConnectors, world.connector, world.relay, world.http]) await stopProcess(p);
    killAllGroups();
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

// ---- the report -----------------------------------------------------------------------------

const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');

export function printTunnel(r) {
  const { rows, opts } = r;
  console.log('\n## Tunnel');
  console.log(
    `MCP tools/call "echo" to test/fixtures/stdio-crash-server.mjs; ${(opts.rounds * opts.sliceMs) / 1000} s per measurement ` +
      `(${opts.rounds} rounds of ${opts.sliceMs} ms slices, targets interleaved); ` +
      `long-running gateways, relay and connector first warmed on a throwaway session (up to ${opts.gatewayWarmup} calls / ${opts.gatewayWarmupMs / 1000} s). ` +
      `p50/p99 and calls/s @1: one session in a steady state (after ${opts.freshCalls + opts.steadyWarmup} calls); ` +
      `fresh p50: that session's first ${opts.freshCalls} calls; ` +
      `in flight: ${SESSIONS} calls in flight on that one session (one server process in every target); ` +
      `@${SESSIONS}: ${SESSIONS} concurrent sessions, one call in flight each, after ${opts.warmup} warm-up calls per session; ` +
      `setup = median of ${opts.timedSetups} sequential session setups (connect + initialize).`,
  );
  console.log(
    `server processes @${SESSIONS}: direct, supergateway-shttp, bare-chain, inspect-floor, switchboard and switchboard-pool start one per session (switchboard-pool from a warm pool of ${POOL_SIZE}); supergateway-ws, mcp-proxy and switchboard-shared share one across all sessions; http-direct and switchboard-http call one Streamable-HTTP server (an MCP session each).`,
  );
  if (r.auditDurability) console.log(`switchboard's relay runs audit.durability: ${r.auditDurability} (every record hashed, chained and written; the audit section measures batched and strict).`);
  for (const n of r.notes) console.log(`note: ${n}`);
  console.log('');
  console.log(`| target | p50 ms | p99 ms | fresh p50 ms | calls/s @1 | calls/s ${SESSIONS} in flight | calls/s @${SESSIONS} | setup ms |`);
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const name of TARGETS) {
    const x = rows[name];
    if (!x) continue;
    if (x.unavailable) console.log(`| ${name} | unavailable: ${x.unavailable} | | | | | | |`);
    else if (x.failed) console.log(`| ${name} | failed: ${x.failed} | | | | | | |`);
    else console.log(`| ${name} | ${f2(x.p50)} | ${f2(x.p99)} | ${f2(x.p50fresh)} | ${f0(x.rate1)} | ${f0(x.rateInflight)} | ${f0(x.rate32)} | ${f2(x.setup)} |`);
  }

  const ok = (name) => rows[name] && Number.isFinite(rows[name].p50);
  const at32 = TARGETS.filter(ok).map((n) => `${n} ${f2(rows[n].p50at32)} / ${f2(rows[n].p99at32)}`);
  if (at32.length) console.log(`\np50 / p99 ms with ${SESSIONS} sessions: ${at32.join(', ')}`);
  const base = [
    ['direct', 'direct'],
    ['supergateway-ws', 'supergateway-ws'],
  ].filter(([n]) => ok(n));
  if (base.length) {
    console.log('\nRatios (p50: added ms and ×; calls/s: fraction of the baseline):');
    for (const [b] of base) {
      const B = rows[b];
      for (const name of TARGETS) {
        if (name === b || !ok(name)) continue;
        const x = rows[name];
        console.log(
          `  ${name.padEnd(19)} vs ${b.padEnd(15)} p50 ${x.p50 - B.p50 >= 0 ? '+' : ''}${f2(x.p50 - B.p50)} ms (${f2(x.p50 / B.p50)}×)` +
            `   calls/s @1 ${f2(x.rate1 / B.rate1)}×   in flight ${f2(x.rateInflight / B.rateInflight)}×   @${SESSIONS} ${f2(x.rate32 / B.rate32)}×`,
        );
      }
    }
  }

  console.log('\nRelay RSS per idle agent session (raw wss clients, mTLS, subprotocol mcp, Streamable-HTTP backend):');
  const idle = r.idle;
  let perSession;
  let perSessionN;
  if (!idle || idle.unavailable) console.log(`  unavailable: ${idle?.unavailable ?? 'not run'}`);
  else if (idle.failed) console.log(`  failed: ${idle.failed}`);
  else {
    for (const x of idle.results) {
      const partial = x.reached < x.n ? ` — stopped at ${f0(x.reached)} of ${f0(x.n)} after ${opts.idleTimeLimitMs / 1000} s` : '';
      console.log(
        `  N = ${f0(x.n).padStart(6)}: ${f2(x.perSession)} KiB/session (VmRSS ${f0(x.before)} → ${f0(x.after)} KiB; ${f0(x.open)} open here, ` +
          `${x.relaySays === undefined ? 'relay count unknown' : `${f0(x.relaySays)} open says the relay`}; ${x.links} connector link${x.links === 1 ? '' : 's'}; ${x.seconds.toFixed(0)} s)${partial}`,
      );
      if (x.closes) console.log(`    closed by the far side: ${x.closes}`);
      if (x.open === x.n) (perSession = x.perSession), (perSessionN = x.n);
      else console.log(`    only ${f0(x.open)} of ${f0(x.n)} sessions held: this N does not count towards the goal`);
    }
    if (opts.idleCounts.length === 1) console.log('  (N = 10,000 runs without --quick)');
  }

  const sw = ok('switchboard') ? rows.switchboard : undefined;
  const d = ok('direct') ? rows.direct : undefined;
  const g = ok('supergateway-ws') ? rows['supergateway-ws'] : undefined;
  const why = rows.switchboard?.unavailable ? 'switchboard unavailable' : 'switchboard not measured';
  const pct = (a, b) => `${((a / b) * 100).toFixed(0)} %`;
  const mark = (cond, have) => (!have ? `not measured (${why})` : cond ? 'met' : 'NOT met');
  const bare = ok('bare-chain') ? rows['bare-chain'] : undefined;
  const floor = ok('inspect-floor') ? rows['inspect-floor'] : undefined;
  console.log('\nGoals:');
  console.log('  against the bare chain (the same topology with mTLS on both hops, splicing frames, nothing inspected):');
  const added = sw && d && bare ? { sw: sw.p50 - d.p50, bare: bare.p50 - d.p50 } : undefined;
  console.log(
    `  - switchboard's p50 added over direct ≤ 1.25 × the bare chain's: ${added ? `+${f2(added.sw)} vs +${f2(added.bare)} ms = ${f2(added.sw / added.bare)}× → ` : ''}${mark(added && added.sw <= 1.25 * added.bare, added)}`,
  );
  console.log(`  - calls/s with ${SESSIONS} in flight ≥ 80 % of the bare chain's: ${sw && bare ? `${f0(sw.rateInflight)} vs ${f0(bare.rateInflight)} = ${pct(sw.rateInflight, bare.rateInflight)} → ` : ''}${mark(sw && bare && sw.rateInflight >= 0.8 * bare.rateInflight, sw && bare)}`);
  console.log(`    (the same with ${SESSIONS} sessions, one call each: ${sw && bare ? `${f0(sw.rate32)} vs ${f0(bare.rate32)} = ${pct(sw.rate32, bare.rate32)}` : 'not measured'})`);
  if (sw?.cpuInflight && bare?.cpuInflight) {
    const c = (x) => `relay ${f0(x.relay)} µs + connector ${f0(x.connector)} µs`;
    const fc = floor?.cpuInflight ? `, inspect-floor ${c(floor.cpuInflight)}` : '';
    console.log(`    (CPU per call with ${SESSIONS} in flight: switchboard ${c(sw.cpuInflight)}, bare chain ${c(bare.cpuInflight)}${fc}; the rest is the agent's and the server's, the same in all)`);
  }
  console.log(
    `    restated (docs/performance.md: inspect-floor, the bare chain doing only what an inspecting relay cannot skip — JSON.parse both ways, an allow-set lookup, two hash-chained audit records per call — ` +
      `keeps ${floor && bare ? pct(floor.rateInflight, bare.rateInflight) : '–'} of the bare chain's) — ≥ 80 % of the inspect floor's: ` +
      `${sw && floor ? `${f0(sw.rateInflight)} vs ${f0(floor.rateInflight)} = ${pct(sw.rateInflight, floor.rateInflight)} → ` : ''}${mark(sw && floor && sw.rateInflight >= 0.8 * floor.rateInflight, sw && floor)}`,
  );
  const pool = ok('switchboard-pool') ? rows['switchboard-pool'] : undefined;
  const shared = ok('switchboard-shared') ? rows['switchboard-shared'] : undefined;
  const mp = ok('mcp-proxy') ? rows['mcp-proxy'] : undefined;
  const hd = ok('http-direct') ? rows['http-direct'] : undefined;
  const sh = ok('switchboard-http') ? rows['switchboard-http'] : undefined;
  console.log(`  warm pool (switchboard-pool, pool.size ${POOL_SIZE}):`);
  console.log(
    `  - session setup p50 ≤ 25 ms: ${pool ? `${f2(pool.setup)} ms (switchboard cold ${sw ? f2(sw.setup) : '–'}, supergateway-ws ${g ? f2(g.setup) : '–'}, mcp-proxy ${mp ? f2(mp.setup) : '–'} ms) → ` : ''}${mark(pool && pool.setup <= 25, pool)}`,
  );
  console.log(`  - fresh-session p50 ≤ 2 × direct's: ${pool && d ? `${f2(pool.p50fresh)} vs ${f2(d.p50fresh)} ms = ${f2(pool.p50fresh / d.p50fresh)}× → ` : ''}${mark(pool && d && pool.p50fresh <= 2 * d.p50fresh, pool && d)}`);
  console.log(
    `    restated (docs/performance.md: the bare chain's own fresh p50 is above 2 × direct's) — fresh-session p50 ≤ 1.25 × the bare chain's: ${pool && bare ? `${f2(pool.p50fresh)} vs ${f2(bare.p50fresh)} ms = ${f2(pool.p50fresh / bare.p50fresh)}× → ` : ''}${mark(pool && bare && pool.p50fresh <= 1.25 * bare.p50fresh, pool && bare)}`,
  );
  console.log('  isolation: shared (switchboard-shared, one server process for all sessions, like supergateway-ws):');
  console.log(`  - calls/s @${SESSIONS} sessions ≥ supergateway-ws's: ${shared && g ? `${f0(shared.rate32)} vs ${f0(g.rate32)} = ${pct(shared.rate32, g.rate32)} → ` : ''}${mark(shared && g && shared.rate32 >= g.rate32, shared && g)}`);
  console.log(`    restated (docs/performance.md: CPU-bound on 2 vCPUs) — ≥ 50 % of supergateway-ws's: ${shared && g ? `${pct(shared.rate32, g.rate32)} → ` : ''}${mark(shared && g && shared.rate32 >= 0.5 * g.rate32, shared && g)}`);
  console.log('  Streamable-HTTP backend (switchboard-http vs the SDK client calling it directly, http-direct):');
  console.log(`  - p50 ≤ direct + 0.4 ms: ${sh && hd ? `${f2(sh.p50)} vs ${f2(hd.p50)} ms = ${sh.p50 - hd.p50 >= 0 ? '+' : '−'}${f2(Math.abs(sh.p50 - hd.p50))} ms → ` : ''}${mark(sh && hd && sh.p50 - hd.p50 <= 0.4, sh && hd)}`);
  console.log('  issue 4 (history):');
  console.log(`  p50 added by the tunnel ≤ 0.3 ms over direct: ${sw && d ? `+${f2(sw.p50 - d.p50)} ms → ` : ''}${mark(sw && d && sw.p50 - d.p50 <= 0.3, sw && d)}`);
  console.log(`  ≥ 50 % of direct throughput at ${SESSIONS} concurrent sessions: ${sw && d ? `${pct(sw.rate32, d.rate32)} → ` : ''}${mark(sw && d && sw.rate32 >= 0.5 * d.rate32, sw && d)}`);
  console.log(`    the same with ${SESSIONS} calls in flight on one session: ${sw && d ? `${pct(sw.rateInflight, d.rateInflight)} → ` : ''}${mark(sw && d && sw.rateInflight >= 0.5 * d.rateInflight, sw && d)}`);
  console.log(`  faster than supergateway-ws in p50: ${sw && g ? `${f2(sw.p50)} vs ${f2(g.p50)} ms → ` : ''}${mark(sw && g && sw.p50 < g.p50, sw && g)}`);
  console.log(`    in calls/s @1: ${sw && g ? `${f0(sw.rate1)} vs ${f0(g.rate1)} → ` : ''}${mark(sw && g && sw.rate1 > g.rate1, sw && g)}`);
  console.log(`    in calls/s with ${SESSIONS} in flight on one session: ${sw && g ? `${f0(sw.rateInflight)} vs ${f0(g.rateInflight)} → ` : ''}${mark(sw && g && sw.rateInflight > g.rateInflight, sw && g)}`);
  console.log(`    in calls/s @${SESSIONS} sessions (supergateway-ws: one shared server process): ${sw && g ? `${f0(sw.rate32)} vs ${f0(g.rate32)} → ` : ''}${mark(sw && g && sw.rate32 > g.rate32, sw && g)}`);
  const haveIdle = Number.isFinite(perSession);
  console.log(`  ≤ 64 KiB relay RSS per idle session (goal set at 10,000): ${haveIdle ? `${f2(perSession)} KiB at N = ${f0(perSessionN)} → ` : ''}${haveIdle ? (perSession <= 64 ? 'met' : 'NOT met') : `not measured (${idle?.unavailable ? why : (idle?.failed ?? why)})`}`);
}
