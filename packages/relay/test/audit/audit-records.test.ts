// What the relay records, field by field (docs/audit.md), and the trail file it writes.
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  AuditSigningKey,
  digestArguments,
  generateAuditKey,
  verifyAuditTrail,
  writeAuditKeyFiles,
  type AuditPublicKey,
  type AuditRecordInput,
} from '@switchboard/audit';
import { AGENT_SUBPROTOCOL } from '@switchboard/protocol';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runRelay } from '../../src/cli/relay-command.js';
import { parseRelayConfig } from '../../src/config/relay-config.js';
import { startRelay } from '../../src/relay.js';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, RELAY_ID, SAMPLER, STANDARD_POLICY, SUPPORT } from '../helpers/ids.js';
import { connect, outcome, startTestRelay, type TestRelay } from '../helpers/relay.js';
import { within } from '../helpers/time.js';

let dir: string;
let t: TestRelay | undefined;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-audit-rec-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await t?.close();
  t = undefined;
});

function serial(pem: string): string {
  return new X509Certificate(pem).serialNumber;
}

const bytes = (o: object): number => Buffer.byteLength(JSON.stringify(o));

describe('record mapping (exact fields)', () => {
  it('link, session, requests and responses of every outcome, refusals — and never the arguments', async () => {
    t = await startTestRelay();
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm', 'ghost']);
    const linkId = h.welcome?.linkId as string;
    const agentCreds = await t.creds(SUPPORT);
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    const s = await h.session(1);
    const sessionId = `${linkId}/${s.id}`;
    const ref = { sessionId, server: 'crm', agent: SUPPORT };

    const args = { card: 'ARG-SECRET-4111', n: 1 };
    await agent.call('tools/call', { name: 'get_order', arguments: args }, 1);
    await agent.call('tools/call', { name: 'delete_customer', arguments: { why: 'ARG-SECRET-2' } }, 'b');
    h.handler = (_s, msg) =>
      msg.method === 'tools/call' && (msg.params as { name: string }).name === 'echo'
        ? { jsonrpc: '2.0', id: msg.id, error: { code: -32000, message: 'echo is down' } }
        : undefined;
    await agent.call('tools/call', { name: 'echo' }, 3);
    agent.request('tools/call', { name: 'lookup_customer', arguments: {} }, 4);
    await h.until(() => h.messages(s.id).length === 3, 'call 4');
    agent.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 4 } });
    agent.request('tools/call', { name: 'lookup_customer', arguments: { q: 'x' } }, 5);
    await h.until(() => h.messages(s.id).length === 5, 'call 5');
    agent.ws.close(1000, 'bye');
    await agent.closed;
    await expect.poll(() => t?.audit.records.some((r) => r.type === 'session.close')).toBe(true);
    await outcome(connect(t, '/v1/agent/ghost', agentCreds, AGENT_SUBPROTOCOL));
    h.close();
    await expect.poll(() => t?.audit.records.some((r) => r.type === 'link.down')).toBe(true);

    const get1 = { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: `get_order on session ${s.id}` }] } };
    const err3 = { jsonrpc: '2.0', id: 3, error: { code: -32000, message: 'echo is down' } };
    const ms = expect.any(Number);
    expect(t.audit.records).toEqual<AuditRecordInput[]>([
      {
        type: 'link.up',
        linkId,
        connector: CRM_CONNECTOR,
        connectorCertSerial: serial((await t.creds(CRM_CONNECTOR)).cert),
        servers: ['crm'],
        rejectedServers: ['ghost'],
      },
      {
        type: 'session.open',
        ...ref,
        connector: CRM_CONNECTOR,
        agentCertSerial: serial(agentCreds.cert),
        connectorCertSerial: serial((await t.creds(CRM_CONNECTOR)).cert),
        linkId,
      },
      {
        type: 'request',
        ...ref,
        direction: 'agent-to-server',
        requestId: '1',
        method: 'tools/call',
        name: 'get_order',
        decision: 'allow',
        ruleId: 'support-reads-crm',
        reason: 'tool "get_order" is allowed by rule "support-reads-crm" (allow "get_order")',
        argsDigest: digestArguments(args),
      },
      { type: 'response', ...ref, requestId: '1', method: 'tools/call', name: 'get_order', status: 'ok', latencyMs: ms, bytes: bytes(get1), redactions: {} },
      {
        type: 'request',
        ...ref,
        direction: 'agent-to-server',
        requestId: '"b"',
        method: 'tools/call',
        name: 'delete_customer',
        decision: 'deny',
        ruleId: 'support-reads-crm',
        reason: 'tool "delete_customer" is denied by rule "support-reads-crm" (deny "*delete*")',
        argsDigest: digestArguments({ why: 'ARG-SECRET-2' }),
      },
      {
        type: 'request',
        ...ref,
        direction: 'agent-to-server',
        requestId: '3',
        method: 'tools/call',
        name: 'echo',
        decision: 'allow',
        ruleId: 'support-reads-crm',
        reason: 'tool "echo" is allowed by rule "support-reads-crm" (allow "echo")',
        argsDigest: null,
      },
      { type: 'response', ...ref, requestId: '3', method: 'tools/call', name: 'echo', status: 'error', errorCode: -32000, latencyMs: ms, bytes: bytes(err3), redactions: {} },
      expect.objectContaining({ type: 'request', requestId: '4', name: 'lookup_customer', decision: 'allow', argsDigest: digestArguments({}) }),
      { type: 'response', ...ref, requestId: '4', method: 'tools/call', name: 'lookup_customer', status: 'aborted', latencyMs: ms, bytes: 0, redactions: {} },
      expect.objectContaining({ type: 'request', requestId: '5', argsDigest: digestArguments({ q: 'x' }) }),
      { type: 'response', ...ref, requestId: '5', method: 'tools/call', name: 'lookup_customer', status: 'aborted', latencyMs: ms, bytes: 0, redactions: {} },
      { type: 'session.close', ...ref, connector: CRM_CONNECTOR, code: 1000, reason: 'bye', durationMs: ms },
      {
        type: 'connection.refused',
        peer: SUPPORT,
        certSerial: serial(agentCreds.cert),
        remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        path: '/v1/agent/ghost',
        status: 403,
        reason: expect.stringContaining('ghost'),
      },
      { type: 'link.down', linkId, connector: CRM_CONNECTOR, code: 1000, reason: 'harness done' },
    ]);
    expect(JSON.stringify(t.audit.records)).not.toContain('ARG-SECRET');
  });

  it('server→agent requests: direction, method, decision and rule', async () => {
    t = await startTestRelay();
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const agent = await AgentClient.open(t, SAMPLER, 'crm');
    const s = await h.session(1);
    h.sendData(s.id, { jsonrpc: '2.0', id: 's1', method: 'sampling/createMessage', params: { messages: [], maxTokens: 1 } });
    await agent.next();
    h.sendData(s.id, { jsonrpc: '2.0', id: 7, method: 'elicitation/create', params: {} });
    await h.until(() => h.messages(s.id).find((m) => m.id === 7), 'the denial');
    expect(t.audit.records.filter((r) => r.type === 'request')).toEqual([
      {
        type: 'request',
        sessionId: `${h.welcome?.linkId}/${s.id}`,
        server: 'crm',
        agent: SAMPLER,
        direction: 'server-to-agent',
        requestId: '"s1"',
        method: 'sampling/createMessage',
        name: null,
        decision: 'allow',
        ruleId: 'sampler',
        reason: 'sampling requests are allowed by rule "sampler"',
        argsDigest: null,
      },
      expect.objectContaining({ direction: 'server-to-agent', requestId: '7', method: 'elicitation/create', decision: 'deny', ruleId: null }),
    ]);
    h.close();
  });

  it('a tool name with a lone surrogate is recorded (as U+FFFD) instead of breaking the trail', async () => {
    t = await startTestRelay({ audit: { path: join(dir, 'surrogate.log'), signingKey: 'none' } });
    const h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    await h.session(1);
    agent.send('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x\\ud800","arguments":{"a":"\\udfff"}}}');
    expect((await agent.next()).error.code).toBe(-32602);
    expect((await agent.call('tools/call', { name: 'echo' }, 2)).result).toBeDefined();
    h.close();
    await t.close();
    const lines = (await readFile(join(dir, 'surrogate.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const denied = lines.find((l) => l.type === 'request' && l.requestId === '1');
    expect(denied).toMatchObject({ name: 'x\uFFFD', decision: 'deny', argsDigest: expect.stringMatching(/^json:[0-9a-f]{64}$/) });
    expect(await verifyAuditTrail([join(dir, 'surrogate.log')])).toMatchObject({ ok: true });
  });
});

describe('the trail file', () => {
  let keyPath: string;
  let pub: AuditPublicKey;
  beforeAll(async () => {
    const key = generateAuditKey();
    const files = await writeAuditKeyFiles(dir, key);
    keyPath = files.privateKeyPath;
    pub = AuditSigningKey.fromPem(key.privateKeyPem).publicKey;
  });

  async function traffic(relay: TestRelay, n: number): Promise<void> {
    const h = await HarnessConnector.connect(relay, CRM_CONNECTOR, ['crm']);
    const agent = await AgentClient.open(relay, SUPPORT, 'crm');
    await h.session(1);
    for (let i = 1; i <= n; i++) await agent.call('tools/call', { name: 'get_order', arguments: { secret: `ARG-SECRET-${i}` } }, i);
    agent.ws.close(1000);
    await agent.closed;
    h.close();
    await h.closed;
  }

  it('is a signed hash chain that verifies, ends with a checkpoint at clean shutdown, and continues across restarts', async () => {
    const path = join(dir, 'chain.log');
    const policy = join(dir, 'policy.yaml');
    await writeFile(policy, JSON.stringify(STANDARD_POLICY));
    t = await startTestRelay({ policy, audit: { path, signingKey: keyPath, checkpointEvery: { records: 5 } } });
    await traffic(t, 6);
    await t.close();
    const first = await verifyAuditTrail([path], { publicKey: pub, checkpoints: `${path}.checkpoints` });
    expect(first).toMatchObject({ ok: true, firstSeq: 1, unsignedTail: 0 });
    expect(first.checkpoints).toBeGreaterThanOrEqual(3);
    const lines = (await readFile(path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ seq: 1, type: 'policy.reload', accepted: true, file: policy, error: null });
    expect(lines.at(-1)).toMatchObject({ type: 'checkpoint', coversSeq: first.lastSeq - 1 });
    expect(lines.filter((l) => l.type === 'request')).toHaveLength(6);
    expect(lines.filter((l) => l.type === 'response')).toHaveLength(6);
    expect(await readFile(path, 'utf8')).not.toContain('ARG-SECRET');

    t = await startTestRelay({ policy, audit: { path, signingKey: keyPath } });
    await traffic(t, 1);
    await t.close();
    const second = await verifyAuditTrail([path], { publicKey: pub, checkpoints: `${path}.checkpoints` });
    expect(second).toMatchObject({ ok: true, firstSeq: 1, unsignedTail: 0 });
    expect(second.lastSeq).toBeGreaterThan(first.lastSeq + 4);
  });

  it('a corrupt tail stops the relay at start (RELAY_ERR_AUDIT, AUDIT_ERR_CORRUPT_TAIL); `switchboard relay` exits 1', async () => {
    const path = join(dir, 'corrupt.log');
    t = await startTestRelay({ audit: { path, signingKey: 'none' } });
    await traffic(t, 1);
    await t.close();
    t = undefined;
    // One edited value in the last record: its time.
    const text = await readFile(path, 'utf8');
    const lines = text.split('\n');
    lines[lines.length - 2] = (lines[lines.length - 2] as string).replace('"time":"2', '"time":"1');
    const edited = lines.join('\n');
    expect(edited).not.toBe(text);
    await writeFile(path, edited);
    const ca = (await import('@switchboard/pki/testing')).createTestCA;
    const testCa = await ca({ trustDomain: 'example.org' });
    const options = { listen: '127.0.0.1:0', identity: { svid: await testCa.issue(RELAY_ID), bundle: testCa.bundle }, policy: STANDARD_POLICY, audit: { path, signingKey: 'none' } };
    await expect(startRelay(options)).rejects.toMatchObject({ code: 'RELAY_ERR_AUDIT', message: expect.stringMatching(/AUDIT_ERR_CORRUPT_TAIL.*audit verify/) });
    expect(await readFile(path, 'utf8')).toBe(edited);

    const ids = join(dir, 'ids');
    await testCa.writeIdentity(ids, await testCa.issue(RELAY_ID));
    await writeFile(join(dir, 'p.yaml'), JSON.stringify(STANDARD_POLICY));
    await writeFile(join(dir, 'relay.yaml'), `listen: 127.0.0.1:0\nidentity: ./ids\npolicy: ./p.yaml\naudit: { path: ./corrupt.log, signingKey: none }\n`);
    let stderr = '';
    const code = await within(runRelay({ config: join(dir, 'relay.yaml') }, { stderr: { write: (s: string) => (stderr += s) } }), 10_000, 'runRelay');
    expect(code).toBe(1);
    expect(stderr).toMatch(/^RELAY_ERR_AUDIT: audit: refusing to start: the trail .*corrupt\.log is damaged \(AUDIT_ERR_CORRUPT_TAIL/);
  });

  it('an unreadable signing key is a configuration error', async () => {
    await expect(startTestRelay({ audit: { path: join(dir, 'k.log'), signingKey: join(dir, 'missing.pem') } })).rejects.toMatchObject({
      code: 'RELAY_ERR_CONFIG',
      message: expect.stringMatching(/^config: audit\.signingKey: cannot load the checkpoint key .*missing\.pem: AUDIT_ERR_KEY_INVALID/),
    });
  });

  it.each<[string, object, RegExp]>([
    ['signingKey: none', { path: join('X', 'w1.log'), signingKey: 'none' }, /audit\.signingKey is none: checkpoints are not signed/],
    ['durability off', { path: join('X', 'w2.log'), durability: 'off', signingKey: 'KEY' }, /audit\.durability is off/],
  ])('warns when the trail is weakened: %s', async (_label, audit, warning) => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
    const ca = await (await import('@switchboard/pki/testing')).createTestCA({ trustDomain: 'example.org' });
    const a = JSON.parse(JSON.stringify(audit).replaceAll('X', dir.replaceAll('\\', '\\\\')).replace('"KEY"', JSON.stringify(keyPath)));
    const relay = await startRelay({ listen: '127.0.0.1:0', identity: { svid: await ca.issue(RELAY_ID), bundle: ca.bundle }, policy: STANDARD_POLICY, audit: a }, { logger });
    await relay.close();
    const warnings = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 40);
    // Besides the audit warning, only the one about pins in memory (no pins.path in these options).
    expect(warnings.map((w) => w.msg)).toEqual([expect.stringMatching(warning), expect.stringMatching(/^relay\.yaml has no pins\.path: tool definitions are pinned \(tofu\) in memory/)]);
  });
});

describe('relay.yaml `audit`', () => {
  const base = { listen: '0.0.0.0:8443', identity: './ids', policy: './policy.yaml' };

  it('resolves paths and keeps every setting', () => {
    const c = parseRelayConfig(
      {
        ...base,
        audit: {
          path: './audit.log',
          durability: 'batched',
          signingKey: './pki/audit_key.pem',
          checkpointEvery: { records: 500, seconds: 30 },
          rotate: { maxBytes: 104857600, maxAgeSeconds: 86400 },
        },
      },
      '/etc/sb',
    );
    expect(c.audit).toEqual({
      path: '/etc/sb/audit.log',
      durability: 'batched',
      signingKey: '/etc/sb/pki/audit_key.pem',
      checkpointEvery: { records: 500, seconds: 30 },
      rotate: { maxBytes: 104857600, maxAgeSeconds: 86400 },
    });
    expect(parseRelayConfig({ ...base, audit: { path: 'a.log', signingKey: 'none' } }, '/x').audit).toEqual({ path: '/x/a.log', durability: 'strict', signingKey: 'none' });
  });

  it('requires signingKey: a key file, or none to run unsigned knowingly', () => {
    expect(() => parseRelayConfig({ ...base, audit: { path: 'a.log' } }, '/x')).toThrow(
      'config: audit.signingKey: is required: the checkpoint key (audit_key.pem from `switchboard ca init`), or none to run without signed checkpoints (a cut-off tail then goes unnoticed)',
    );
  });

  it.each<[string, object, string, RegExp]>([
    ['an unknown durability', { path: 'a', signingKey: 'none', durability: 'none' }, 'audit.durability', /must be strict, batched or off/],
    ['a durability that is not a string', { path: 'a', signingKey: 'none', durability: false }, 'audit.durability', /must be a string/],
    ['an unknown key', { path: 'a', signingKey: 'none', sync: true }, 'audit.sync', /unknown key/],
    ['an unknown checkpoint key', { path: 'a', signingKey: 'none', checkpointEvery: { minutes: 1 } }, 'audit.checkpointEvery.minutes', /unknown key/],
    ['checkpointEvery.records 0', { path: 'a', signingKey: 'none', checkpointEvery: { records: 0 } }, 'audit.checkpointEvery.records', /between 1 and/],
    ['rotate.maxBytes too small', { path: 'a', signingKey: 'none', rotate: { maxBytes: 10 } }, 'audit.rotate.maxBytes', /between 4096 and/],
    ['rotate not a mapping', { path: 'a', signingKey: 'none', rotate: true }, 'audit.rotate', /must be a mapping/],
    ['an empty signingKey', { path: 'a', signingKey: '' }, 'audit.signingKey', /must be the checkpoint key file \(audit_key\.pem\), or none/],
  ])('refuses %s (RELAY_ERR_CONFIG at %s)', (_label, audit, path, rule) => {
    let err: unknown;
    try {
      parseRelayConfig({ ...base, audit }, '/x');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'RELAY_ERR_CONFIG', path, message: expect.stringMatching(rule) });
  });
});
