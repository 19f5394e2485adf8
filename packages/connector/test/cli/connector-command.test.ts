import { EventEmitter } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameType } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { connectorCommand, runConnector, type Connector, type SignalSource } from '../../src/index.js';
import { CONNECTOR_ID, ECHO_SERVER, memoryLogger, setup } from '../harness/setup.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function stderr(): { write(s: string): boolean; text(): string } {
  let out = '';
  return { write: (s) => ((out += s), true), text: () => out };
}

async function configFile(body: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-cli-'));
  const path = join(dir, 'connector.yaml');
  await writeFile(path, body);
  return path;
}

describe('runConnector', () => {
  it('exits 2 with "code: message" on an invalid config', async () => {
    const path = await configFile('relays: [wss://r:1]\nidentity: ./ids\nservers:\n  crm: { command: node, comand: x }\n');
    const err = stderr();
    expect(await runConnector({ config: path }, { stderr: err, logger: memoryLogger() })).toBe(2);
    expect(err.text()).toBe(
      `CONNECTOR_ERR_CONFIG_INVALID: config: ${path}:4:25: servers.crm.comand: unknown key (allowed here: command, args, env, cwd, egress, filesystem, pool, isolation; did you mean "command"?)\n`,
    );
  });

  it('names a misspelt key of a server that has neither command nor url, with its line', async () => {
    const path = await configFile('relays: [wss://r:1]\nidentity: ./ids\nservers:\n  crm:\n    comand: node\n    args: [./crm.js]\n');
    const err = stderr();
    expect(await runConnector({ config: path }, { stderr: err, logger: memoryLogger() })).toBe(2);
    expect(err.text()).toBe(
      `CONNECTOR_ERR_CONFIG_INVALID: config: ${path}:5:5: servers.crm.comand: unknown key (allowed here: command, args, env, cwd, egress, filesystem, pool, isolation, url, headers, allowRemote; did you mean "command"?)\n`,
    );
  });

  it('exits 2 when the config file is missing', async () => {
    const err = stderr();
    expect(await runConnector({ config: '/nonexistent/c.yaml' }, { stderr: err, logger: memoryLogger() })).toBe(2);
    expect(err.text()).toBe('CONNECTOR_ERR_CONFIG_UNREADABLE: config: cannot read /nonexistent/c.yaml: ENOENT\n');
  });

  it('exits 1 when the identity directory cannot be loaded', async () => {
    const path = await configFile('relays: [wss://127.0.0.1:1]\nidentity: ./no-such-ids\nservers:\n  crm: { command: node }\n');
    const err = stderr();
    expect(await runConnector({ config: path }, { stderr: err, logger: memoryLogger() })).toBe(1);
    expect(err.text()).toMatch(/^CONNECTOR_ERR_IDENTITY_INVALID: identity: cannot read .*svid\.pem: ENOENT/);
  });

  it('exits 1 with a clear message when the relay refuses the connector at first start', async () => {
    const { harness, ca } = await setup({ upgradeStatus: () => 403 });
    cleanup.push(() => harness.close());
    const dir = await mkdtemp(join(tmpdir(), 'sb-ids-'));
    await ca.writeIdentity(dir, await ca.issue(CONNECTOR_ID));
    const path = await configFile(`relays: [${harness.url}]\nidentity: ${dir}\nservers:\n  crm: { command: ${process.execPath}, args: [${ECHO_SERVER}] }\n`);
    const err = stderr();
    expect(await runConnector({ config: path }, { stderr: err, logger: memoryLogger() })).toBe(1);
    expect(err.text()).toMatch(/^CONNECTOR_ERR_IDENTITY_REJECTED: link: wss:\/\/127\.0\.0\.1:\d+ refused the link \(HTTP 403/);
  });

  it('on SIGTERM sends GOAWAY, drains and exits 0', async () => {
    const { harness, ca } = await setup();
    cleanup.push(() => harness.close());
    const dir = await mkdtemp(join(tmpdir(), 'sb-ids-'));
    await ca.writeIdentity(dir, await ca.issue(CONNECTOR_ID));
    const path = await configFile(`relays: [${harness.url}]\nidentity: ${dir}\nservers:\n  crm: { command: ${process.execPath}, args: [${ECHO_SERVER}] }\n`);
    const signals = new EventEmitter();
    let connector: Connector | undefined;
    const exit = runConnector({ config: path }, { stderr: stderr(), logger: memoryLogger(), signals: signals as unknown as SignalSource, onStarted: (c) => (connector = c) });
    const link = await harness.link(1);
    await link.frame((f) => f.type === FrameType.HELLO);
    await connector?.ready();
    signals.emit('SIGTERM');
    await link.frame((f) => f.type === FrameType.GOAWAY);
    expect(await exit).toBe(0);
    expect(signals.listenerCount('SIGTERM')).toBe(0);
  });

  it('a SIGTERM while it is starting up stops it cleanly: exit 0, nothing started', async () => {
    const { harness, ca } = await setup();
    cleanup.push(() => harness.close());
    const dir = await mkdtemp(join(tmpdir(), 'sb-ids-'));
    await ca.writeIdentity(dir, await ca.issue(CONNECTOR_ID));
    const path = await configFile(`relays: [${harness.url}]\nidentity: ${dir}\nservers:\n  crm: { command: ${process.execPath}, args: [${ECHO_SERVER}] }\n`);
    const signals = new EventEmitter();
    let started = false;
    const exit = runConnector({ config: path }, { stderr: stderr(), logger: memoryLogger(), signals: signals as unknown as SignalSource, onStarted: () => void (started = true) });
    // Before the handlers went in first, this signal found no listener and was lost.
    expect(signals.listenerCount('SIGTERM')).toBe(1);
    signals.emit('SIGTERM');
    expect(await exit).toBe(0);
    expect(started).toBe(false);
    expect(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT')).toBe(0);
  });
});

describe('connectorCommand', () => {
  it('is `connector --config <path>`', () => {
    const cmd = connectorCommand();
    expect(cmd.name()).toBe('connector');
    expect(cmd.options.map((o) => o.long)).toEqual(['--config', '--log-level']);
  });

  it('reports its exit code through setExit (the switchboard CLI convention)', async () => {
    let code = -1;
    const err = stderr();
    await connectorCommand({ stderr: err }, (c) => (code = c)).parseAsync(['--config', '/nonexistent/c.yaml'], { from: 'user' });
    expect(code).toBe(2);
    expect(err.text()).toMatch(/^CONNECTOR_ERR_CONFIG_UNREADABLE: /);
  });
});
