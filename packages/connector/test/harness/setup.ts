import { fileURLToPath } from 'node:url';
import type { Identity } from '@switchboard/pki';
import { createTestCA, type TestCA } from '@switchboard/pki/testing';
import { parseConnectorConfig, type ConnectorConfig, type Logger } from '../../src/index.js';
import { HarnessRelay, type HarnessOptions } from './relay-harness.js';

export const ECHO_SERVER = fileURLToPath(new URL('../fixtures/echo-server.mjs', import.meta.url));
export const EXIT_AT_ONCE = fileURLToPath(new URL('../fixtures/exit-at-once.mjs', import.meta.url));
export const RAW_LINES = fileURLToPath(new URL('../fixtures/raw-lines.mjs', import.meta.url));
export const CONNECTOR_ID = 'spiffe://example.org/connector/crm';

export interface Setup {
  ca: TestCA;
  harness: HarnessRelay;
  identity: Identity;
}

let shared: TestCA | undefined;

/** testCA is one throwaway CA per test file (minting a CA costs more than a leaf). */
export async function testCA(): Promise<TestCA> {
  shared ??= await createTestCA({ trustDomain: 'example.org' });
  return shared;
}

export async function setup(opts: Partial<HarnessOptions> = {}): Promise<Setup> {
  const ca = await testCA();
  const relay = await ca.issue('spiffe://example.org/relay/test');
  const svid = await ca.issue(CONNECTOR_ID);
  const harness = await HarnessRelay.start({ svid: relay, bundlePem: ca.bundlePem, bundles: ca.bundles, ...opts });
  return { ca, harness, identity: { svid, bundle: ca.bundle } };
}

/**
 * echoConfig is the link tests' connector config. Its stdio servers run uncontained (`egress: any`,
 * `filesystem: any`) unless a server sets those keys itself: these tests watch backend processes by
 * their host PID, which a sandbox's PID namespace hides. Containment has its own tests
 * (test/sandbox, test/e2e/containment.test.ts).
 */
export function echoConfig(relays: string[], identity: Identity, extra: Record<string, unknown> = {}): ConnectorConfig {
  const servers: Record<string, unknown> = { echo: { command: process.execPath, args: [ECHO_SERVER] }, ...extra };
  for (const [name, s] of Object.entries(servers)) servers[name] = uncontained(s);
  return parseConnectorConfig({ relays, identity, servers });
}

/** uncontained adds `egress: any, filesystem: any` to a stdio server that sets neither. */
export function uncontained(server: unknown): unknown {
  if (typeof server !== 'object' || server === null || !('command' in server)) return server;
  return { egress: 'any', filesystem: 'any', ...server };
}

export interface LogEntry {
  level: string;
  msg: string | undefined;
  obj: Record<string, unknown>;
}

/** memoryLogger records every entry (with the child bindings merged in). */
export function memoryLogger(entries: LogEntry[] = [], bindings: Record<string, unknown> = {}): Logger & { entries: LogEntry[] } {
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      entries.push({ level, msg, obj: { ...bindings, ...obj } });
    };
  return {
    entries,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (b) => memoryLogger(entries, { ...bindings, ...b }),
  };
}

export const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'harness', version: '1.0.0' } },
} as const;
export const INITIALIZED = { jsonrpc: '2.0', method: 'notifications/initialized' } as const;
export function call(id: number | string, name: string, args: Record<string, unknown> = {}): object {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } };
}

/** alive reports whether a process id still exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
