// The relay's audit trail survives `kill -9`: in strict mode every call an agent saw succeed has its
// request record on disk, and the chain verifies up to the crash point. Then the restarted relay
// continues the chain, and `switchboard audit verify` accepts the real trail and catches a flipped byte.
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect } from '@switchboard/agent-sdk';
import {
  AuditSigningKey,
  digestArguments,
  generateAuditKey,
  verifyAuditTrail,
  writeAuditKeyFiles,
  type AuditRecord,
} from '@switchboard/audit';
import { parseConnectorConfig, startConnector } from '@switchboard/connector';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, EVERYTHING, TD, createWorld, startRelayProcess, type Connector, type RelayProcess, type World } from './world.js';

const run = promisify(execFile);
const AGENT = `spiffe://${TD}/agent/crash`;
const POLICY = `trustDomain: ${TD}
servers:
  everything: { connectors: [spiffe://${TD}/connector/main] }
rules:
  - id: crash-echo
    agents: [${AGENT}]
    servers: [everything]
    tools: { allow: [echo] }
`;
const AGENTS = 6;
const PIPELINE = 2;

describe('audit trail: kill -9 the relay in strict mode', () => {
  let w: World;
  let connector: Connector | undefined;
  let relay: RelayProcess | undefined;
  let pki: string;
  let config: string;

  beforeAll(async () => {
    w = await createWorld(POLICY, { startRelay: false });
    pki = join(w.dir, 'pki');
    await mkdir(pki);
    await writeAuditKeyFiles(pki, generateAuditKey());
    config = join(w.dir, 'relay.yaml');
    await writeFile(
      config,
      `listen: 127.0.0.1:0
identity: ./ids/relay
policy: ./policy.yaml
audit:
  path: ./audit.log
  durability: strict
  signingKey: ./pki/audit_key.pem
  checkpointEvery: { records: 40 }
`,
    );
  });

  afterAll(async () => {
    await connector?.close().catch(() => undefined);
    if (relay && relay.child.exitCode === null && relay.child.signalCode === null) relay.child.kill('SIGKILL');
    await w?.close();
  });

  it('every call an agent saw succeed is recorded; the chain verifies to the crash point; a restart continues it', async () => {
    relay = await startRelayProcess(config);
    connector = await startConnector(
      parseConnectorConfig(
        { relays: [relay.url], identity: join(w.dir, 'ids', 'connector'), servers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } } },
        { baseDir: w.dir },
      ),
      { drainTimeoutMs: 0 },
    );
    await connector.ready();
    const identity = await w.identity('agent', AGENT);
    const url = relay.url;
    const clients = await Promise.all(Array.from({ length: AGENTS }, () => connect({ relay: url, server: 'everything', identity })));

    // Every agent keeps PIPELINE calls in flight, each with a unique message, until the relay dies.
    const succeeded: string[] = [];
    const failed: string[] = [];
    let dead = false;
    let n = 0;
    const loop = async (c: (typeof clients)[number], a: number, p: number): Promise<void> => {
      for (let i = 0; !dead && i < 100_000; i++) {
        const message = `crash-${a}-${p}-${i}-${n++}`;
        try {
          const r = await c.callTool({ name: 'echo', arguments: { message } }, undefined, { timeout: 10_000 });
          const text = (r.content as { type: string; text: string }[])[0]?.text;
          if (text === `Echo: ${message}`) succeeded.push(message);
          else failed.push(message);
        } catch {
          failed.push(message);
          return;
        }
      }
    };
    const loops = clients.flatMap((c, a) => Array.from({ length: PIPELINE }, (_, p) => loop(c, a, p)));
    // Kill mid-stream: after a good number of calls went through, with calls still in flight.
    const deadline = Date.now() + 20_000;
    while (succeeded.length < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    relay.child.kill('SIGKILL');
    expect(await relay.exited).toBeNull();
    dead = true;
    await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 15_000))]);
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await connector.close();
    connector = undefined;
    expect(succeeded.length).toBeGreaterThanOrEqual(50);

    // The chain verifies up to the crash point (a torn final line is allowed, docs/audit.md).
    const path = join(w.dir, 'audit.log');
    const publicKey = AuditSigningKey.fromPem(await readFile(join(pki, 'audit_key.pem'), 'utf8')).publicKey;
    const verdict = await verifyAuditTrail([path], { publicKey, checkpoints: `${path}.checkpoints` });
    expect(verdict).toMatchObject({ ok: true, firstSeq: 1 });
    expect(verdict.checkpoints).toBeGreaterThan(0);
    // Every call an agent saw succeed has its (allowed) request record.
    const text = await readFile(path, 'utf8');
    const complete = text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
    const records = complete.trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
    const allowed = new Set(records.flatMap((r) => (r.type === 'request' && r.decision === 'allow' && r.name === 'echo' ? [r.argsDigest] : [])));
    const missing = succeeded.filter((m) => !allowed.has(digestArguments({ message: m })));
    expect(missing).toEqual([]);
    expect(text).not.toContain('crash-0-0-0-');

    // The restarted relay cuts a torn line (if any), continues the chain, and signs it at a clean stop.
    relay = await startRelayProcess(config);
    // The relay logs its URL just before `runRelay` installs its signal handlers: give it a moment.
    await new Promise((r) => setTimeout(r, 300));
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
    const after = await verifyAuditTrail([path], { publicKey, checkpoints: `${path}.checkpoints` });
    expect(after).toMatchObject({ ok: true, firstSeq: 1, unsignedTail: 0 });
    expect(after.lastSeq).toBeGreaterThan(verdict.lastSeq);

    // `switchboard audit verify` on the real trail: 0; after flipping one byte in the middle: 1.
    const verify = () =>
      run(process.execPath, [CLI, 'audit', 'verify', path, '--key', join(pki, 'audit_pub.pem')]).then(
        (r) => ({ code: 0, out: r.stdout }),
        (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
      );
    const good = await verify();
    expect(good).toMatchObject({ code: 0, out: expect.stringMatching(/^using checkpoint file .*\nOK: \d+ records/) });
    const bytes = await readFile(path);
    const at = bytes.indexOf('"server":"everything"', Math.floor(bytes.length / 2)) + '"server":"'.length;
    expect(bytes[at]).toBe('e'.charCodeAt(0));
    bytes[at] = 'f'.charCodeAt(0);
    await writeFile(path, bytes);
    const bad = await verify();
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/^using checkpoint file .*\nFAILED: first bad seq \d+: edited/);
  }, 120_000);
});
