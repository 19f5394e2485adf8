// Policy enforcement end to end: the real relay and connector, real MCP servers (server-filesystem from npm,
// an SDK server whose tool description changes at runtime, the Streamable-HTTP fixture), the real
// MCP SDK Client as the agent. Argument constraints, pinning, redaction, rate limits, hot reload,
// the catalog and identity to backends.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ToolListChangedNotificationSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { connect } from '@switchboard/agent-sdk';
import { startRelay } from '@switchboard/relay';
import { createWorld, CLI, FILESYSTEM, HTTP_SERVER, ROOT, TD, type World } from './world.js';

const run = promisify(execFile);
const MUTATING = join(ROOT, 'test/fixtures/mutating-mcp-server.mjs');
const AWS = 'AKIAIOSFODNN7EXAMPLE';
const ALICE = `spiffe://${TD}/agent/support/alice`;

let w: World;
let files: string;
let pins: string;
let aliceIds: string;
let http: ChildProcess;
let secretText: string;

function policy(files: string, opts: { mutatingTools?: string } = {}): string {
  return `trustDomain: ${TD}
zones:
  internal: { agents: [spiffe://${TD}/agent/**] }
servers:
  files:    { connectors: [spiffe://${TD}/connector/main], zone: internal, labels: { data: customer-files } }
  mutating: { connectors: [spiffe://${TD}/connector/main] }
  tickets:  { connectors: [spiffe://${TD}/connector/main], identityToBackend: true, pinning: { mode: off } }
rules:
  - id: support-reads-files
    agents: [spiffe://${TD}/agent/support/*]
    servers: [files]
    tools: { allow: [read_text_file, list_directory, list_allowed_directories] }
    args:
      read_text_file: { path: { glob: "${files}/**", required: true } }
      list_directory: { path: { glob: ["${files}", "${files}/**"] } }
  - id: support-mutating
    agents: [spiffe://${TD}/agent/support/*]
    servers: [mutating]
    tools: { allow: [${opts.mutatingTools ?? 'get_order, mutate, get_config, echo'}] }
    redact: [secrets]
  - id: echo-rate
    agents: [spiffe://${TD}/agent/support/*]
    servers: [mutating]
    tools: { allow: [echo] }
    rate: { calls: 3, per: 1m }
  - id: support-tickets
    agents: [spiffe://${TD}/agent/support/*]
    servers: [tickets]
    tools: { allow: [echo] }
`;
}

async function startHttpFixture(env: Record<string, string>): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, [HTTP_SERVER], { env: { ...process.env, PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      const m = /"listening":"127\.0\.0\.1:(\d+)"/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`http fixture exited with ${code}`)));
  });
  return { proc, port };
}

beforeAll(async () => {
  files = await mkdtemp(join(tmpdir(), 'sb-policy-files-'));
  await writeFile(join(files, 'hello.txt'), 'hello from the private side\n');
  await mkdir(join(files, 'sub'));
  await writeFile(join(files, 'sub', 'inner.txt'), 'inner\n');
  // A link inside the allowed folder that points outside it: only the server can see through it.
  await symlink('/etc', join(files, 'escape'));

  w = await createWorld(policy(files), { startRelay: false });
  aliceIds = await w.identity('alice', ALICE);
  pins = join(w.dir, 'pins.json');
  const jwtKey = join(w.dir, 'jwt_key.pem');
  await writeFile(jwtKey, w.ca.ca.jwtSigner().privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  const jwks = join(w.dir, 'bundle.jwks.json');
  await writeFile(jwks, w.ca.ca.bundle().toJwks());
  w.relay = await startRelay({
    listen: '127.0.0.1:0',
    identity: join(w.dir, 'ids', 'relay'),
    policy: w.relayPolicyPath,
    audit: { path: w.auditPath, signingKey: 'none' },
    pins: { path: pins },
    jwtSigner: { key: jwtKey },
  });

  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  secretText = `db: postgres://app@db/prod\nsigning_key: |\n${privateKey.export({ type: 'pkcs8', format: 'pem' }) as string}aws_access_key_id = ${AWS}\n`;
  const fixture = await startHttpFixture({ SWITCHBOARD_JWT_BUNDLE: jwks, SWITCHBOARD_JWT_AUDIENCE: 'tickets' });
  http = fixture.proc;
  await w.startConnector({
    files: { command: process.execPath, args: [FILESYSTEM, files], filesystem: { write: [files] } },
    mutating: { command: process.execPath, args: [MUTATING], env: { FIXTURE_CONFIG_TEXT: secretText } },
    tickets: { url: `http://127.0.0.1:${fixture.port}/mcp` },
  });
  await w.connector!.ready();
}, 60_000);

afterAll(async () => {
  http?.kill('SIGTERM');
  await w?.close();
  if (files) await rm(files, { recursive: true, force: true });
});

function agent(server: string): Promise<Client> {
  return connect({ relay: w.relay.url, server, identity: aliceIds });
}

async function rpcError(p: Promise<unknown>): Promise<McpError> {
  try {
    const r = await p;
    throw new Error(`expected an error, got ${JSON.stringify(r)}`);
  } catch (e) {
    if (!(e instanceof McpError)) throw e;
    return e;
  }
}

function text(r: unknown): string {
  return ((r as { content: { text?: string }[] }).content ?? []).map((c) => c.text ?? '').join('');
}

async function auditRecords(): Promise<Record<string, unknown>[]> {
  const raw = await readFile(w.auditPath, 'utf8').catch(() => '');
  return raw
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function eventually<T>(fn: () => Promise<T | undefined>, what: string, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('argument constraints with server-filesystem', () => {
  it('reads inside the allowed folder pass; reads outside it are refused by the relay, including through .. and odd paths', async () => {
    const c = await agent('files');
    // Pinning is on (the relay has a pin store): the tools are checked when listed.
    expect((await c.listTools()).tools.map((t) => t.name).sort()).toEqual(['list_allowed_directories', 'list_directory', 'read_text_file']);
    expect(text(await c.callTool({ name: 'read_text_file', arguments: { path: join(files, 'hello.txt') } }))).toBe('hello from the private side\n');
    expect(text(await c.callTool({ name: 'read_text_file', arguments: { path: `${files}/./sub/../hello.txt` } }))).toBe('hello from the private side\n');
    for (const path of [
      '/etc/passwd',
      `${files}/../../etc/passwd`,
      `${files}/sub/../../../etc/passwd`,
      `${files}//..//..//etc//passwd`,
      `${files}/./../${files.split('/').pop()}-other/x`,
      'hello.txt',
      `${files}/hello.txt\u0000/../../etc/passwd`,
      `${files}\\..\\..\\etc\\passwd`,
    ]) {
      const e = await rpcError(c.callTool({ name: 'read_text_file', arguments: { path } }));
      expect(e.code, path).toBe(-32003);
      expect(e.data).toEqual({ reason: 'argument', argument: 'path', constraint: 'glob' });
    }
    expect((await rpcError(c.callTool({ name: 'read_text_file', arguments: {} }))).data).toMatchObject({ constraint: 'required' });
    expect((await rpcError(c.callTool({ name: 'list_directory', arguments: { path: '/' } }))).code).toBe(-32003);
    await c.close();
  });

  it('paths that only look inside (a symlink out, encoded dots) pass the lexical check and are stopped by the server sandbox', async () => {
    const c = await agent('files');
    await c.listTools();
    for (const path of [`${files}/escape/passwd`, `${files}/%2e%2e/%2e%2e/etc/passwd`]) {
      let out: string;
      try {
        const r = await c.callTool({ name: 'read_text_file', arguments: { path } });
        out = `${(r as { isError?: boolean }).isError ? 'error: ' : ''}${text(r)}`;
      } catch (e) {
        out = `error: ${(e as Error).message}`;
      }
      expect(out, path).toMatch(/^error: /);
      expect(out).not.toMatch(/root:/);
    }
    // A tool the identity may not use at all is still answered as unknown.
    expect((await rpcError(c.callTool({ name: 'write_file', arguments: { path: join(files, 'x'), content: 'x' } }))).code).toBe(-32602);
    await c.close();
  });
});

describe('tool pinning with a server that changes a description at runtime', () => {
  it('the changed tool is hidden and refused, the drift audited, and `switchboard tools approve` makes it visible', async () => {
    const c = await agent('mutating');
    let changed = 0;
    c.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      changed++;
    });
    const names = async (): Promise<string[]> => (await c.listTools()).tools.map((t) => t.name).sort();
    expect(await names()).toEqual(['echo', 'get_config', 'get_order', 'mutate']);
    expect(text(await c.callTool({ name: 'get_order', arguments: { id: '7' } }))).toBe('order 7: 2 widgets');
    await c.callTool({ name: 'mutate', arguments: {} });
    // The server announces the change; the agent lists again and no longer sees get_order.
    await eventually(async () => (changed > 0 ? true : undefined), 'tools/list_changed from the server');
    expect(await names()).toEqual(['echo', 'get_config', 'mutate']);
    expect((await rpcError(c.callTool({ name: 'get_order', arguments: { id: '7' } }))).code).toBe(-32602);
    const drift = await eventually(async () => (await auditRecords()).find((r) => r.type === 'pin.drift'), 'the pin.drift record');
    expect(drift).toMatchObject({ server: 'mutating', kind: 'tool', name: 'get_order', connector: `spiffe://${TD}/connector/main` });

    const listed = await run(process.execPath, [CLI, 'tools', 'list', '--pins', pins]);
    expect(listed.stdout).toMatch(/DRIFT\s+get_order\s+pinned [0-9a-f]{12} → seen [0-9a-f]{12}.*IMPORTANT: before answering/);
    const before = changed;
    const approved = await run(process.execPath, [CLI, 'tools', 'approve', 'mutating', 'get_order', '--pins', pins, '--by', 'e2e']);
    expect(approved.stdout).toMatch(/^approved mutating\/get_order: /);
    await eventually(async () => (changed > before ? true : undefined), 'tools/list_changed after approval');
    expect(await names()).toEqual(['echo', 'get_config', 'get_order', 'mutate']);
    expect((await c.listTools()).tools.find((t) => t.name === 'get_order')?.description).toMatch(/IMPORTANT/);
    expect(text(await c.callTool({ name: 'get_order', arguments: { id: '8' } }))).toBe('order 8: 2 widgets');
    expect(await eventually(async () => (await auditRecords()).find((r) => r.type === 'pin.approve'), 'pin.approve')).toMatchObject({
      name: 'get_order',
      approvedBy: 'e2e',
    });
    await c.close();
  });
});

describe('redaction', () => {
  it('a tool result holding a private key and an AWS key reaches the agent redacted, and the audit trail counts it', async () => {
    const c = await agent('mutating');
    await c.listTools();
    const out = text(await c.callTool({ name: 'get_config', arguments: {} }));
    expect(secretText).toContain('BEGIN PRIVATE KEY');
    expect(out).not.toContain('PRIVATE KEY-----\nM');
    expect(out).not.toContain(AWS);
    expect(out).toBe('db: postgres://app@db/prod\nsigning_key: |\n[REDACTED:private_key]\naws_access_key_id = [REDACTED:aws_access_key]\n');
    const rec = await eventually(async () => (await auditRecords()).find((r) => r.type === 'response' && r.name === 'get_config'), 'the response record');
    expect(rec.redactions).toEqual({ private_key: 1, aws_access_key: 1 });
    // Ordinary text and numbers pass untouched.
    expect(text(await c.callTool({ name: 'echo', arguments: { text: 'order 4111 1111 1111 1112 at 1732500000000' } }))).toBe('order 4111 1111 1111 1112 at 1732500000000');
    await c.close();
  });
});

describe('rate limits', () => {
  it('trips with -32029 and data.retryAfterMs; nothing is queued', async () => {
    const c = await agent('mutating');
    await c.listTools();
    // echo-rate allows 3 per minute per agent; the redaction test above used one.
    const results: (string | number)[] = [];
    for (let i = 0; i < 4; i++) {
      try {
        results.push(text(await c.callTool({ name: 'echo', arguments: { text: `#${i}` } })));
      } catch (e) {
        const err = e as McpError;
        results.push(err.code);
        expect(err.data).toMatchObject({ limit: 'rate', retryAfterMs: expect.any(Number) });
        expect((err.data as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
        expect((err.data as { retryAfterMs: number }).retryAfterMs).toBeLessThanOrEqual(60_000);
      }
    }
    expect(results).toEqual(['#0', '#1', -32029, -32029]);
    await c.close();
  });
});

describe('identity to backends', () => {
  it('the HTTP backend receives a JWT-SVID naming the calling agent, audience = the server, valid ≤ 5 minutes', async () => {
    const c = await agent('tickets');
    await c.listTools();
    const r = (await c.callTool({ name: 'echo', arguments: { message: 'hi' } })) as { _meta?: Record<string, unknown> };
    expect(r._meta).toMatchObject({ authorization: 'present', agent: ALICE });
    expect(r._meta!.expiresInS as number).toBeLessThanOrEqual(300);
    await c.close();
  });
});

describe('the catalog', () => {
  it('GET /v1/servers lists the servers the caller may reach and its tools from the last lists seen', async () => {
    const creds = { cert: await readFile(join(aliceIds, 'svid.pem'), 'utf8'), key: await readFile(join(aliceIds, 'svid_key.pem'), 'utf8') };
    const body = await new Promise<any>((resolve, reject) => {
      const req = request(
        `${w.relay.url.replace('wss:', 'https:')}/v1/servers`,
        { ...creds, ca: w.ca.bundlePem, checkServerIdentity: () => undefined },
        (res) => {
          let s = '';
          res.on('data', (d: Buffer) => (s += d.toString('utf8')));
          res.on('end', () => resolve(JSON.parse(s)));
        },
      );
      req.on('error', reject);
      req.end();
    });
    const byName = Object.fromEntries(body.servers.map((s: { name: string }) => [s.name, s]));
    expect(Object.keys(byName).sort()).toEqual(['files', 'mutating', 'tickets']);
    expect(byName.files).toMatchObject({ online: true, zone: 'internal', labels: { data: 'customer-files' } });
    expect(byName.files.tools.map((t: { name: string }) => t.name).sort()).toEqual(['list_allowed_directories', 'list_directory', 'read_text_file']);
  });
});

describe('hot reload', () => {
  it('a reload that removes a grant applies to the live session (list_changed, next call refused); an invalid file keeps the policy', async () => {
    const c = await agent('mutating');
    let changed = 0;
    c.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      changed++;
    });
    expect((await c.listTools()).tools.map((t) => t.name)).toContain('get_config');
    const reloads = (): { ok: number; failed: number } => w.relay.metrics().policyReloads;
    const okBefore = reloads().ok;
    // An editor's save: write a temporary file and rename it over the policy.
    await writeFile(`${w.relayPolicyPath}.tmp`, policy(files, { mutatingTools: 'get_order, mutate' }));
    await rename(`${w.relayPolicyPath}.tmp`, w.relayPolicyPath);
    await eventually(async () => (changed > 0 ? true : undefined), 'tools/list_changed after the reload');
    expect(reloads().ok).toBe(okBefore + 1);
    expect((await rpcError(c.callTool({ name: 'get_config', arguments: {} }))).code).toBe(-32602);
    // (get_order is hidden for this new session: its backend process still has the original
    // description, which is not the one approved above — a drift of its own.)
    expect((await c.listTools()).tools.map((t) => t.name).sort()).toEqual(['echo', 'mutate']);

    const good = w.relay.policy.current;
    await writeFile(w.relayPolicyPath, policy(files).replace('servers: [mutating]', 'servers: [mutating]\n    toolz: {}'));
    await eventually(async () => (reloads().failed > 0 ? true : undefined), 'the rejected reload');
    expect(w.relay.policy.current).toBe(good);
    const prom = await w.relay.prometheus();
    expect(prom).toMatch(/switchboard_relay_policy_reloads_total\{result="failed"\} 1/);
    expect(text(await c.callTool({ name: 'mutate', arguments: {} }))).toBe('mutated');
    const check = await run(process.execPath, [CLI, 'policy', 'check', w.relayPolicyPath]).catch((e: { code: number; stderr: string }) => e);
    expect(check).toMatchObject({ code: 2, stderr: expect.stringMatching(/^RELAY_ERR_POLICY: policy: .*policy\.yaml:\d+:\d+: rules\[\d\]\.toolz: unknown key/) });
    await c.close();
  });
});
