// A test world: a throwaway CA, identities on disk, a real relay and a real connector in-process,
// real MCP servers from npm behind the connector. Everything binds 127.0.0.1, port 0.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createTestCA, type TestCA } from '@switchboard/pki/testing';
import { startRelay } from '@switchboard/relay';
import { parseConnectorConfig, startConnector } from '@switchboard/connector';
import { generateAuditKey, writeAuditKeyFiles } from '@switchboard/audit';

const require = createRequire(import.meta.url);
const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '../..');
export const CLI = join(ROOT, 'packages/cli/bin/switchboard.js');
export const EVERYTHING = require.resolve('@modelcontextprotocol/server-everything/dist/index.js');
export const FILESYSTEM = require.resolve('@modelcontextprotocol/server-filesystem/dist/index.js');
export const CRASH = join(ROOT, 'test/fixtures/stdio-crash-server.mjs');
export const HTTP_SERVER = join(ROOT, 'test/fixtures/http-mcp-server.mjs');
export const TD = 'example.org';

export type Relay = Awaited<ReturnType<typeof startRelay>>;
export type Connector = Awaited<ReturnType<typeof startConnector>>;

export interface World {
  dir: string;
  ca: TestCA;
  /** identity writes an X509-SVID for `id` and returns its directory. */
  identity(name: string, id: string, options?: Parameters<TestCA['issue']>[1]): Promise<string>;
  relay: Relay;
  relayPolicyPath: string;
  auditPath: string;
  startRelay(port?: number): Promise<Relay>;
  connector: Connector | undefined;
  startConnector(servers: Record<string, unknown>, idName?: string): Promise<Connector>;
  close(): Promise<void>;
}

/** WorldOptions: `startRelay: false` leaves the relay to the test (e.g. a relay child process). */
export interface WorldOptions {
  startRelay?: boolean;
}

export async function createWorld(policyYaml: string, worldOptions: WorldOptions = {}): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-e2e-'));
  const ca = await createTestCA({ trustDomain: TD });
  const identity = async (name: string, id: string, options?: Parameters<TestCA['issue']>[1]): Promise<string> => {
    const d = join(dir, 'ids', name);
    await ca.writeIdentity(d, await ca.issue(id, options));
    return d;
  };
  const relayIds = await identity('relay', `spiffe://${TD}/relay/main`);
  const relayPolicyPath = join(dir, 'policy.yaml');
  await writeFile(relayPolicyPath, policyYaml);
  const auditPath = join(dir, 'audit.log');
  const connectorIds = await identity('connector', `spiffe://${TD}/connector/main`);
  const w: World = {
    dir,
    ca,
    identity,
    relayPolicyPath,
    auditPath,
    relay: undefined as unknown as Relay,
    connector: undefined,
    async startRelay(port = 0) {
      w.relay = await startRelay({ listen: `127.0.0.1:${port}`, identity: relayIds, policy: relayPolicyPath, audit: { path: auditPath, signingKey: 'none' } });
      return w.relay;
    },
    async startConnector(servers, idName) {
      const config = parseConnectorConfig({ relays: [w.relay.url], identity: idName ? join(dir, 'ids', idName) : connectorIds, servers }, { baseDir: dir });
      const c = await startConnector(config, { drainTimeoutMs: 0 });
      w.connector = c;
      return c;
    },
    async close() {
      await w.connector?.close().catch(() => undefined);
      await w.relay?.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  if (worldOptions.startRelay !== false) await w.startRelay();
  return w;
}

export interface RelayProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
}

/** startRelayProcess runs `switchboard relay --config …` and resolves once it logs its URL. */
export async function startRelayProcess(config: string): Promise<RelayProcess> {
  const child = spawn(process.execPath, [CLI, 'relay', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay did not start in 20 s: ${stderr}`)), 20_000);
    lines.on('line', (line) => {
      try {
        const l = JSON.parse(line) as { msg?: string; url?: string };
        if (l.msg === 'relay listening' && l.url) {
          clearTimeout(timer);
          resolve(l.url);
        }
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`relay exited with ${code} before listening: ${stderr}`));
    });
  });
  return { child, url, exited };
}


/**
 * RelayPair is two `switchboard relay` processes (`a`, `b`) sharing one policy, each with its own
 * signed audit trail, on fixed ports so a killed one comes back at the same URL.
 */
export interface RelayPair {
  dir: string;
  ca: TestCA;
  urls: { a: string; b: string };
  /** start (re)starts relay `name`. */
  start(name: 'a' | 'b'): Promise<RelayProcess>;
  /** kill sends SIGKILL to relay `name` and waits for it to exit. */
  kill(name: 'a' | 'b'): Promise<void>;
  /** process is relay `name`'s running process (it must be running). */
  process(name: 'a' | 'b'): RelayProcess;
  /** forget drops relay `name` from the running set (it exited by itself). */
  forget(name: 'a' | 'b'): void;
  auditPath(name: 'a' | 'b'): string;
  /** verify runs `switchboard audit verify … --key … [...flags]` on relay `name`'s trail: 0, or the exit code and output. */
  verify(name: 'a' | 'b', ...flags: string[]): Promise<0 | string>;
  /** trail reads relay `name`'s audit records. */
  trail(name: 'a' | 'b'): Promise<{ type: string; [k: string]: unknown }[]>;
  close(): Promise<void>;
}

/** freeLoopbackPort is a TCP port on 127.0.0.1 that nothing listened on a moment ago. */
export async function freeLoopbackPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * startRelayPair writes both relays' configs (policy `policyYaml`, one audit key; `extra` is more
 * relay.yaml, `auditDir` where relay `name`'s trail goes) and starts them.
 */
export async function startRelayPair(policyYaml: string, options: { extra?: string; auditDir?: Partial<Record<'a' | 'b', string>> } = {}): Promise<RelayPair> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-relays-'));
  const ca = await createTestCA({ trustDomain: TD });
  await writeFile(join(dir, 'policy.yaml'), policyYaml);
  await mkdir(join(dir, 'audit-key'));
  await writeAuditKeyFiles(join(dir, 'audit-key'), generateAuditKey());
  const running = new Map<string, RelayProcess>();
  const urls = { a: '', b: '' };
  for (const name of ['a', 'b'] as const) {
    await ca.writeIdentity(join(dir, `relay-${name}`), await ca.issue(`spiffe://${TD}/relay/${name}`));
    const port = await freeLoopbackPort();
    urls[name] = `wss://127.0.0.1:${port}`;
    await writeFile(
      join(dir, `relay-${name}.yaml`),
      `listen: 127.0.0.1:${port}\nidentity: ./relay-${name}\npolicy: ./policy.yaml\naudit: { path: ${join(options.auditDir?.[name] ?? dir, `audit-${name}.log`)}, signingKey: ./audit-key/audit_key.pem }\n${options.extra ?? ''}`,
    );
  }
  const pair: RelayPair = {
    dir,
    ca,
    urls,
    async start(name) {
      const relay = await startRelayProcess(join(dir, `relay-${name}.yaml`));
      running.set(name, relay);
      return relay;
    },
    async kill(name) {
      const relay = running.get(name);
      if (relay === undefined) return;
      relay.child.kill('SIGKILL');
      await relay.exited;
      running.delete(name);
    },
    process(name) {
      const p = running.get(name);
      if (p === undefined) throw new Error(`relay ${name} is not running`);
      return p;
    },
    forget(name) {
      running.delete(name);
    },
    auditPath: (name) => join(options.auditDir?.[name] ?? dir, `audit-${name}.log`),
    async verify(name, ...flags) {
      return run(process.execPath, [CLI, 'audit', 'verify', pair.auditPath(name), '--key', join(dir, 'audit-key', 'audit_pub.pem'), ...flags]).then(
        () => 0 as const,
        (e: { code: number; stdout: string; stderr: string }) => `${e.code}: ${e.stdout}${e.stderr}`,
      );
    },
    async trail(name) {
      return (await readFile(pair.auditPath(name), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string });
    },
    async close() {
      for (const name of [...running.keys()] as ('a' | 'b')[]) await pair.kill(name);
      await rm(dir, { recursive: true, force: true });
    },
  };
  await pair.start('a');
  await pair.start('b');
  return pair;
}

/** until polls `check` every 25 ms until it holds, for at most `ms`. */
export async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** LoggedProcess is a child process whose JSON log lines are kept (stdout and stderr), with the end of its stderr. */
export interface LoggedProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  /** lines are the parsed JSON log lines so far. */
  lines: Record<string, unknown>[];
  stderr(): string;
  /** logged waits until `count` lines with `msg` were logged, at most `ms`. */
  logged(msg: string, count: number, ms: number): Promise<void>;
}

/** startLoggedProcess runs `switchboard <args…>` with its logs kept (no wait for anything). */
export function startLoggedProcess(args: string[]): LoggedProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-20_000)));
  const lines: Record<string, unknown>[] = [];
  // The relay logs to stdout, the connector to stderr: read both.
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    });
  }
  return {
    child,
    exited,
    lines,
    stderr: () => err,
    async logged(msg, count, ms) {
      const end = Date.now() + ms;
      while (lines.filter((l) => l.msg === msg).length < count) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${count}× "${msg}": ${err.slice(-500)}`);
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode} before ${count}× "${msg}": ${err.slice(-500)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}
