import { PassThrough } from 'node:stream';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { agentCommand, runAgentStdio, silentLogger } from '../../src/index.js';
import { AGENT_ID, harness } from '../harness/agent-harness.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function stderr(): { write(s: string): boolean; text(): string } {
  let out = '';
  return { write: (s) => ((out += s), true), text: () => out };
}

async function identityDir(): Promise<string> {
  const { ca } = await harness();
  const dir = await mkdtemp(join(tmpdir(), 'sb-agent-cli-'));
  await ca.writeIdentity(dir, await ca.issue(AGENT_ID));
  return dir;
}

describe('runAgentStdio', () => {
  it('exits 1 with "code: message" on stderr when the relay refuses', async () => {
    const { relay } = await harness({ refuse: () => ({ status: 403, body: 'nope\n' }) });
    cleanup.push(() => relay.close());
    const err = stderr();
    const stdout = new PassThrough();
    const code = await runAgentStdio({ relay: relay.url, server: 'crm', identity: await identityDir() }, { stdin: new PassThrough(), stdout, stderr: err, logger: silentLogger });
    expect(code).toBe(1);
    expect(err.text()).toBe(`AGENT_ERR_ACCESS_DENIED: agent: access denied: ${AGENT_ID} may not use server "crm" (relay: nope)\n`);
    expect(stdout.read()).toBeNull();
  });

  it('exits 2 on invalid flags', async () => {
    const err = stderr();
    const code = await runAgentStdio({ relay: 'http://relay:8443', server: 'crm', identity: await identityDir() }, { stdin: new PassThrough(), stdout: new PassThrough(), stderr: err, logger: silentLogger });
    expect(code).toBe(2);
    expect(err.text()).toBe('AGENT_ERR_INVALID_ARGUMENT: agent: relay must be a wss:// URL, not http:\n');
  });

  it.each([
    ['neither --identity nor --workload-api', {}, 'agent: give --identity <dir> (svid.pem, svid_key.pem, bundle.pem) or --workload-api [endpoint] (the SPIFFE Workload API)'],
    ['both --identity and --workload-api', { identity: '/ids', workloadApi: true }, 'agent: give either --identity <dir> or --workload-api [endpoint], not both'],
    ['--enroll-token with --workload-api', { workloadApi: 'unix:///run/a.sock', enrollToken: 't' }, 'agent: --enroll-token needs --identity <dir> (the enrolled identity is written there), not --workload-api'],
    ['--enroll-token without --enroll-url and --enroll-bundle', { identity: '/ids', enrollToken: 't' }, 'agent: enrollment needs all three of --enroll-token <file>, --enroll-url <https://host:port> and --enroll-bundle <bundle.pem>'],
  ])('exits 2 for %s, naming the rule', async (_what, flags, rule) => {
    const err = stderr();
    const code = await runAgentStdio({ relay: 'wss://127.0.0.1:1', server: 'crm', ...flags }, { stdin: new PassThrough(), stdout: new PassThrough(), stderr: err, logger: silentLogger });
    expect(code).toBe(2);
    expect(err.text()).toBe(`AGENT_ERR_INVALID_ARGUMENT: ${rule}\n`);
  });

  it('exits 1 when the identity directory cannot be read', async () => {
    const err = stderr();
    const code = await runAgentStdio({ relay: 'wss://127.0.0.1:1', server: 'crm', identity: '/nonexistent' }, { stdin: new PassThrough(), stdout: new PassThrough(), stderr: err, logger: silentLogger });
    expect(code).toBe(1);
    expect(err.text()).toMatch(/^AGENT_ERR_IDENTITY_INVALID: agent: cannot load the identity in \/nonexistent/);
  });

  it('exits 0 when stdin closes', async () => {
    const { relay } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const stdin = new PassThrough();
    const p = runAgentStdio({ relay: relay.url, server: 'crm', identity: await identityDir() }, { stdin, stdout: new PassThrough(), stderr: stderr(), logger: silentLogger });
    await new Promise((r) => setTimeout(r, 100));
    stdin.end();
    expect(await p).toBe(0);
  });
});

describe('agentCommand', () => {
  it('exposes `agent stdio` and `agent http` with the documented flags', () => {
    const cmd = agentCommand();
    expect(cmd.name()).toBe('agent');
    const [stdio, http] = cmd.commands;
    expect(stdio?.name()).toBe('stdio');
    expect(stdio?.options.map((o) => o.long)).toEqual(['--relay', '--server', '--identity', '--workload-api', '--enroll-token', '--enroll-url', '--enroll-bundle', '--relay-id', '--no-renew', '--log-level', '--no-reopen', '--no-resume']);
    expect(http?.name()).toBe('http');
    expect(http?.options.map((o) => o.long)).toContain('--listen');
  });

  it('reports its exit code through setExit (the switchboard CLI convention)', async () => {
    let code = -1;
    const err = stderr();
    await agentCommand({ stderr: err }, (c) => (code = c)).parseAsync(['http', '--listen', '0.0.0.0:7000', '--relay', 'wss://r:1', '--server', 'crm', '--identity', await identityDir()], { from: 'user' });
    expect(code).toBe(2);
    expect(err.text()).toBe('AGENT_ERR_INVALID_ARGUMENT: agent: --listen 0.0.0.0 is not a loopback address; the HTTP bridge binds loopback only\n');
  });
});
