// What the tunnel benchmarks share: spawning and stopping the processes under test, ports, time
// limits, percentiles, and the command line of the stdio MCP server they all call.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const BENCH = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = resolve(BENCH, '..');
export const CLI = join(ROOT, 'packages/cli/bin/switchboard.js');
export const FIXTURE = join(ROOT, 'test/fixtures/stdio-crash-server.mjs');
export const HTTP_FIXTURE = join(ROOT, 'test/fixtures/http-mcp-server.mjs');

export const now = () => process.hrtime.bigint();
export const ms = (ns) => Number(ns) / 1e6;
export const oneLine = (err) => String(err?.message ?? err).split('\n')[0].slice(0, 300);

/** quantile of an ascending array (NaN when empty). */
export function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export function median(xs) {
  return quantile([...xs].sort((a, b) => a - b), 0.5);
}

/** withTimeout rejects with `<what>: no answer within N ms` when `promise` takes longer. */
export async function withTimeout(promise, timeoutMs, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- processes ------------------------------------------------------------------------------

// Every process we spawn leads its own process group, so killing the group also ends the MCP
// server processes the gateways and the connector start. Groups are killed at the end of a run,
// and on exit if the run dies half-way.
const groups = new Set();
process.on('exit', killAllGroups);

export function killGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

/** killAllGroups SIGKILLs every process group still running. */
export function killAllGroups() {
  for (const pgid of [...groups]) {
    killGroup(pgid, 'SIGKILL');
    groups.delete(pgid);
  }
}

/** startProcess spawns `command args` in its own process group and keeps the tail of its output. */
export function startProcess(name, command, args, { env, cwd } = {}) {
  const child = spawn(command, args, {
    cwd: cwd ?? ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  groups.add(child.pid);
  const proc = { name, child, pid: child.pid, tail: '', exited: null };
  const keep = (chunk) => {
    proc.tail = (proc.tail + chunk.toString()).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('exit', (code, signal) => {
    proc.exited = { code, signal };
  });
  child.on('error', (err) => {
    proc.exited = { code: null, signal: null, error: err };
  });
  return proc;
}

/** stopProcess ends a process group: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcess(proc, graceMs = 2000) {
  if (!proc) return;
  if (killGroup(proc.pid, 'SIGTERM')) {
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && killGroup(proc.pid, 0)) await sleep(50);
    killGroup(proc.pid, 'SIGKILL');
  }
  groups.delete(proc.pid);
}

export function describeExit(proc) {
  const e = proc.exited;
  const how = e?.error ? oneLine(e.error) : `exited ${e?.signal ?? e?.code}`;
  const tail = proc.tail.trim().split('\n').slice(-3).join(' / ').slice(0, 400);
  return `${proc.name} ${how}${tail ? `: ${tail}` : ''}`;
}

export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** waitForPort resolves once 127.0.0.1:port accepts a connection (bounded; fails fast if `proc` dies). */
export async function waitForPort(port, proc, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc?.exited) throw new Error(describeExit(proc));
    const ok = await new Promise((r) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${proc?.name ?? 'server'}: nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms${proc?.tail ? ` (${proc.tail.trim().slice(-300)})` : ''}`);
}

// ---- the MCP server command -----------------------------------------------------------------

/**
 * serverCommand returns how to start the stdio fixture (`args`) and the Streamable-HTTP one
 * (`httpArgs`) with `command` (this node). The fixtures import the MCP SDK and zod. When the
 * workspace root does not provide them to test/fixtures, a resolve hook (loaded with --import in the
 * server process, written into `dir`) lets bare imports fall back to the bench package and to the
 * SDK's own dependencies; `hook` says so. The hook costs a little at process start and nothing per
 * call; every target gets the same command.
 */
export async function serverCommand(dir) {
  if (esmFinds(FIXTURE, '@modelcontextprotocol/sdk') && esmFinds(FIXTURE, 'zod')) {
    return { command: process.execPath, args: [FIXTURE], httpArgs: [HTTP_FIXTURE], hook: false };
  }
  const parents = [pathToFileURL(join(BENCH, 'package.json')).href, import.meta.resolve('@modelcontextprotocol/sdk/server/mcp.js')];
  const hooks = join(dir, 'fixture-resolve-hooks.mjs');
  const register = join(dir, 'fixture-resolve.mjs');
  await writeFile(
    hooks,
    `const PARENTS = ${JSON.stringify(parents)};
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND' || /^(\\.|\\/|[a-z]+:)/i.test(specifier)) throw err;
    for (const parentURL of PARENTS) {
      try { return await next(specifier, { ...context, parentURL }); } catch {}
    }
    throw err;
  }
}
`,
  );
  await writeFile(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  const pre = ['--import', pathToFileURL(register).href];
  return { command: process.execPath, args: [...pre, FIXTURE], httpArgs: [...pre, HTTP_FIXTURE], hook: true };
}

// esmFinds says whether an ES module at `file` can import package `name`: ESM resolution walks up
// node_modules folders and, unlike require.resolve, ignores NODE_PATH (which npx and pnpm set).
function esmFinds(file, name) {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'node_modules', name, 'package.json'))) return true;
    if (dirname(dir) === dir) return false;
  }
}

/** writeIdentities issues an SVID per `[name, spiffeId]` from `ca` into `<dir>/ids/<name>` and returns the directories by name. */
export async function writeIdentities(ca, dir, pairs) {
  const ids = {};
  for (const [name, id] of pairs) {
    ids[name] = join(dir, 'ids', name);
    await ca.writeIdentity(ids[name], await ca.issue(id));
  }
  return ids;
}
