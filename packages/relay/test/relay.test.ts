import { EventEmitter } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Hex } from '@switchboard/audit';
import { createTestCA } from '@switchboard/pki/testing';
import { AGENT_SUBPROTOCOL, FrameType } from '@switchboard/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { relayCommand, runRelay } from '../src/cli/relay-command.js';
import { startRelay, type Relay } from '../src/relay.js';
import { AgentClient } from './helpers/agent-client.js';
import { HarnessConnector } from './helpers/harness-connector.js';
import { CRM_CONNECTOR, RELAY_ID, SUPPORT, SUPPORT_2 } from './helpers/ids.js';
import { connect, outcome, startTestRelay, type TestRelay } from './helpers/relay.js';
import { within } from './helpers/time.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-life-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const POLICY = `trustDomain: example.org
servers:
  crm: { connectors: [${CRM_CONNECTOR}] }
rules:
  - id: support-reads-crm
    agents: [spiffe://example.org/agent/support/*]
    servers: [crm]
    tools: { allow: [lookup_*, get_order, echo], deny: ["*delete*"] }
`;

let t: TestRelay | undefined;
let h: HarnessConnector | undefined;
afterEach(async () => {
  h?.ws.terminate();
  h = undefined;
  await t?.close();
  t = undefined;
});

describe('shutdown', () => {
  it('sends GOAWAY, lets open sessions finish, then stops', async () => {
    t = await startTestRelay();
    h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    await h.session(1);
    const closing = t.relay.close({ drainTimeoutMs: 10_000 });
    const goaway = await h.until(() => h?.frames.find((f) => f.type === FrameType.GOAWAY), 'GOAWAY');
    expect(goaway).toMatchObject({ payload: { code: 1001, reason: 'relay shutting down' } });
    // The open session still works while draining; new connections are not accepted.
    expect((await agent.call('tools/call', { name: 'echo' })).result).toBeDefined();
    expect((await outcome(connect(t, '/v1/agent/crm', await t.creds(SUPPORT_2), AGENT_SUBPROTOCOL))).kind).toBe('error');
    const started = Date.now();
    agent.ws.close(1000);
    await within(closing, 3000, 'the relay to stop');
    expect(Date.now() - started).toBeLessThan(2500);
    expect((await within(h.closed, 3000, 'link close')).code).toBe(1001);
  });

  it('closes sessions still open after the drain timeout with 4509', async () => {
    t = await startTestRelay();
    h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    await h.session(1);
    await within(t.relay.close({ drainTimeoutMs: 150 }), 4000, 'the relay to stop');
    expect((await agent.closedWithin()).code).toBe(4509);
  });
});

describe('policy reload', () => {
  async function relayWithPolicyFile(): Promise<{ path: string }> {
    const path = join(dir, `policy-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(path, POLICY);
    t = await startTestRelay({ policy: path });
    h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    return { path };
  }

  it('a removed grant is refused at the live session’s next message (4403) and for new sessions (403)', async () => {
    const { path } = await relayWithPolicyFile();
    const agent = await AgentClient.open(t!, SUPPORT, 'crm');
    expect((await agent.call('tools/call', { name: 'echo' })).result).toBeDefined();
    await writeFile(path, POLICY.replace('agent/support/*', 'agent/other/*'));
    const r = await t!.relay.reloadPolicy();
    expect(r.ok).toBe(true);
    agent.request('tools/call', { name: 'echo' });
    expect(await agent.closedWithin()).toEqual({ code: 4403, reason: 'access to this server was withdrawn by policy' });
    expect(h!.allMessages().filter((m) => m.method === 'tools/call')).toHaveLength(1);
    const o = await outcome(connect(t!, '/v1/agent/crm', await t!.creds(SUPPORT), AGENT_SUBPROTOCOL));
    expect(o).toMatchObject({ kind: 'refused', status: 403 });
    expect(t!.relay.metrics().policyReloads).toEqual({ ok: 1, failed: 0 });
  });

  it('a changed tool grant applies to the live session', async () => {
    const { path } = await relayWithPolicyFile();
    const agent = await AgentClient.open(t!, SUPPORT, 'crm');
    expect((await agent.call('tools/call', { name: 'update_order' })).error.code).toBe(-32602);
    await writeFile(path, POLICY.replace('get_order, echo', 'get_order, echo, update_order'));
    expect((await t!.relay.reloadPolicy()).ok).toBe(true);
    expect((await agent.call('tools/call', { name: 'update_order' })).result.content[0].text).toMatch(/^update_order on session/);
  });

  it('an invalid file is rejected, counted and audited; the old policy stays in force', async () => {
    const { path } = await relayWithPolicyFile();
    const before = t!.relay.policy.current;
    await writeFile(path, POLICY.replace('tools:', 'toolz:'));
    const r = await t!.relay.reloadPolicy();
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.message).toMatch(/rules\[0\]\.toolz: unknown key/);
    expect(t!.relay.policy.current).toBe(before);
    expect(t!.relay.metrics().policyReloads).toEqual({ ok: 0, failed: 1 });
    expect(t!.audit.records.filter((x) => x.type === 'policy.reload')).toEqual([
      { type: 'policy.reload', accepted: true, file: path, fileHash: expect.stringMatching(/^[0-9a-f]{64}$/), error: null },
      { type: 'policy.reload', accepted: false, file: path, fileHash: sha256Hex(await readFile(path)), error: expect.stringMatching(/toolz/) },
    ]);
    const agent = await AgentClient.open(t!, SUPPORT, 'crm');
    expect((await agent.call('tools/call', { name: 'echo' })).result).toBeDefined();
  });

  it('a connector whose grant is removed gets no new sessions', async () => {
    const { path } = await relayWithPolicyFile();
    await writeFile(path, POLICY.replace(`connectors: [${CRM_CONNECTOR}]`, 'connectors: [spiffe://example.org/connector/new]'));
    expect((await t!.relay.reloadPolicy()).ok).toBe(true);
    expect(t!.relay.servers()).toEqual([]);
    const o = await outcome(connect(t!, '/v1/agent/crm', await t!.creds(SUPPORT), AGENT_SUBPROTOCOL));
    expect(o).toMatchObject({ kind: 'refused', status: 503 });
  });
});

describe('startRelay', () => {
  it('refuses a policy for another trust domain than the relay identity', async () => {
    const ca = await createTestCA({ trustDomain: 'example.org' });
    await expect(
      startRelay({
        listen: '127.0.0.1:0',
        identity: { svid: await ca.issue(RELAY_ID), bundle: ca.bundle },
        policy: { trustDomain: 'other.org', servers: {} },
        audit: { path: join(dir, 'x.log'), signingKey: 'none' },
      }),
    ).rejects.toMatchObject({ code: 'RELAY_ERR_POLICY', message: /other\.org/ });
  });

  it('refuses an identity directory it cannot read', async () => {
    await expect(
      startRelay({ listen: '127.0.0.1:0', identity: join(dir, 'nope'), policy: { trustDomain: 'example.org', servers: {} }, audit: { path: join(dir, 'y.log'), signingKey: 'none' } }),
    ).rejects.toMatchObject({ code: 'RELAY_ERR_IDENTITY' });
  });
});

describe('switchboard relay (runRelay)', () => {
  let ids: string;
  beforeAll(async () => {
    const ca = await createTestCA({ trustDomain: 'example.org' });
    ids = join(dir, 'ids');
    await mkdir(ids, { recursive: true });
    await ca.writeIdentity(ids, await ca.issue(RELAY_ID));
    await writeFile(join(dir, 'policy.yaml'), POLICY);
  });

  function config(extra = '', listen = '127.0.0.1:0'): string {
    return `listen: ${listen}\nidentity: ./ids\npolicy: ./policy.yaml\naudit: { path: ./cli-audit.log, signingKey: none }\n${extra}`;
  }

  async function run(text: string, drive?: (relay: Relay, signals: EventEmitter) => Promise<void>) {
    const path = join(dir, 'relay.yaml');
    await writeFile(path, text);
    const signals = new EventEmitter();
    let stderr = '';
    let started: Promise<void> = Promise.resolve();
    const code = await within(
      runRelay(
        { config: path },
        {
          stderr: { write: (s: string) => (stderr += s) },
          signals: signals as unknown as Parameters<typeof runRelay>[1]['signals'],
          onStarted: (relay) => {
            started = (drive ?? (async () => void signals.emit('SIGTERM')))(relay, signals);
          },
        },
      ),
      10_000,
      'runRelay',
    );
    await started;
    return { code, stderr };
  }

  it('runs until SIGTERM and exits 0; SIGHUP reloads the policy', async () => {
    const { code, stderr } = await run(config('admin: { listen: 127.0.0.1:0 }\n'), async (relay, signals) => {
      expect(relay.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
      signals.emit('SIGHUP');
      await expect.poll(() => relay.metrics().policyReloads.ok).toBe(1);
      signals.emit('SIGTERM');
    });
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expect(await readFile(join(dir, 'cli-audit.log'), 'utf8')).toContain('"type":"policy.reload"');
  });

  it('a second SIGTERM during the drain is still the drain: the handler stays installed until it is over, then exit 0', async () => {
    let emitter: EventEmitter | undefined;
    const counts: number[] = [];
    const { code, stderr } = await run(config(), async (_relay, signals) => {
      emitter = signals;
      signals.emit('SIGTERM');
      counts.push(signals.listenerCount('SIGTERM'));
      // Without a listener, a real process would take the signal's default action: killed mid-drain.
      signals.emit('SIGTERM');
      counts.push(signals.listenerCount('SIGTERM'));
    });
    expect({ code, stderr, counts }).toEqual({ code: 0, stderr: '', counts: [1, 1] });
    expect((emitter as EventEmitter).listenerCount('SIGTERM') + (emitter as EventEmitter).listenerCount('SIGHUP')).toBe(0);
  });

  it('a SIGTERM while the relay is starting stops it cleanly once it is up (exit 0, audit closed)', async () => {
    const path = join(dir, 'relay.yaml');
    await writeFile(path, config());
    const signals = new EventEmitter();
    let started = false;
    let stderr = '';
    const running = runRelay(
      { config: path },
      {
        stderr: { write: (s: string) => (stderr += s) },
        signals: signals as unknown as Parameters<typeof runRelay>[1]['signals'],
        onStarted: () => void (started = true),
      },
    );
    // Before the handlers went in first, this signal found no listener and was lost.
    expect(signals.listenerCount('SIGTERM')).toBe(1);
    signals.emit('SIGTERM');
    expect(await within(running, 10_000, 'runRelay')).toBe(0);
    expect({ started, stderr }).toEqual({ started: false, stderr: '' });
    expect(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGHUP')).toBe(0);
    // The relay did come up (its trail starts with the policy in force) before it was stopped.
    expect(await readFile(join(dir, 'cli-audit.log'), 'utf8')).toContain('"type":"policy.reload"');
  });

  it.each<[string, string, RegExp]>([
    ['an unknown key', config('listn: x\n'), /^RELAY_ERR_CONFIG: config: .*relay\.yaml:5:1: listn: unknown key/],
    ['an invalid policy', config().replace('./policy.yaml', './bad-policy.yaml'), /^RELAY_ERR_POLICY: policy: /],
    ['a missing identity', config().replace('./ids', './no-ids'), /^RELAY_ERR_IDENTITY: identity: /],
  ])('exits 2 on %s with code: message on stderr', async (_label, text, message) => {
    await writeFile(join(dir, 'bad-policy.yaml'), 'trustDomain: example.org\nservers: {}\nextra: 1\n');
    const { code, stderr } = await run(text);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });

  it('exits 1 when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const { code, stderr } = await run(config('', `127.0.0.1:${port}`));
      expect(code).toBe(1);
      expect(stderr).toMatch(/^RELAY_ERR_LISTEN: listen: cannot listen on listen 127\.0\.0\.1:\d+: EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });

  it('relayCommand is `switchboard relay -c, --config <path> [--log-level <level>]`', () => {
    const cmd = relayCommand();
    expect(cmd.name()).toBe('relay');
    expect(cmd.options.map((o) => o.long)).toEqual(['--config', '--log-level']);
    expect(cmd.options.map((o) => o.short)).toEqual(['-c', undefined]);
    expect(cmd.options[0]?.required).toBe(true);
    expect(cmd.options[1]?.argChoices).toEqual(['debug', 'info', 'warn', 'error', 'silent']);
  });
});
