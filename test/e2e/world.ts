// A test world: a throwaway CA, identities on disk, a real relay and a real connector in-process,
// real MCP servers from npm behind the connector. Everything binds 127.0.0.1, port 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createTestCA, type TestCA } from '@switchboard/pki/testing';
import { startRelay } from '@switchboard/relay';
import { parseConnectorConfig, startConnector } from '@switchboard/connector';

const require = createRequire(import.meta.url);
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
      w.relay = await startRelay({ listen: `127.0.0.1:${port}`, identity: relayIds, policy: relayPolicyPath, audit: { path: auditPath } });
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

