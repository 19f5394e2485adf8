// The sandbox's set-up and its refusals: what the connector checks at start, what it mounts, what
// a contained process can see. Needs bubblewrap and socat (.ci/run installs them).
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConnectorConfig, startConnector } from '../../src/index.js';
import { bwrapCommand, planSandbox, probeSandbox, programRoots } from '../../src/sandbox/sandbox.js';
import { EgressProxy, type EgressDenial } from '../../src/sandbox/egress-proxy.js';
import { EgressPolicy, parseEgressRule } from '../../src/sandbox/egress-rules.js';
import { DnsCatcher } from '../../src/sandbox/dns-catcher.js';
import { ECHO_SERVER, memoryLogger, setup } from '../harness/setup.js';
import { request } from 'node:http';
import { createServer, connect } from 'node:net';
import dnsPacket from 'dns-packet';

const run = promisify(execFile);
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sb-sandbox-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('where containment cannot be set up', () => {
  it('no bubblewrap: refused, naming what is missing and how to install it', async () => {
    await expect(probeSandbox([join(dir, 'empty-path')])).rejects.toThrow('bubblewrap (bwrap) is not installed: apt-get install bubblewrap (Debian, Ubuntu) or dnf install bubblewrap (Fedora)');
  });

  it('bubblewrap that cannot make namespaces: refused, saying what the kernel must allow', async () => {
    const bin = join(dir, 'fake-bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'bwrap'), '#!/bin/sh\necho "bwrap: No permissions to create new namespace" >&2\nexit 1\n', { mode: 0o755 });
    await expect(probeSandbox([bin])).rejects.toThrow(/^bubblewrap cannot create the sandbox's namespaces \(bwrap: No permissions to create new namespace\): unprivileged user namespaces must be allowed/);
  });

  it('a contained server whose filesystem path does not exist stops the connector at start, naming the server', async () => {
    const s = await setup();
    try {
      const config = parseConnectorConfig({ relays: [s.harness.url], identity: s.identity, servers: { crm: { command: process.execPath, args: [ECHO_SERVER], filesystem: { read: [join(dir, 'nope')] } } } });
      await expect(startConnector(config, { drainTimeoutMs: 0 })).rejects.toMatchObject({ code: 'CONNECTOR_ERR_CONFIG_INVALID', message: `config: servers.crm: filesystem.read: ${join(dir, 'nope')} does not exist` });
    } finally {
      await s.harness.close();
    }
  });

  it('egress: any and filesystem: any are logged at start as the opt-outs they are', async () => {
    const s = await setup();
    const logs = memoryLogger();
    try {
      const config = parseConnectorConfig({ relays: [s.harness.url], identity: s.identity, servers: { legacy: { command: process.execPath, args: [ECHO_SERVER], egress: 'any', filesystem: 'any' } } });
      const c = await startConnector(config, { drainTimeoutMs: 0, logger: logs });
      await c.close({ drainTimeoutMs: 0 });
      expect(logs.entries.filter((e) => e.level === 'warn').map((e) => e.msg)).toEqual([
        'servers.legacy has egress: any: it reaches the network without a filter',
        "servers.legacy has filesystem: any: it reads and writes whatever the connector's user may",
      ]);
    } finally {
      await s.harness.close();
    }
  });
});

describe('the sandbox', () => {
  it('mounts what Node resolves for the program: its package root and the node_modules above it', async () => {
    const roots = await programRoots(process.execPath, [ECHO_SERVER], dir);
    expect(roots).toContain(join(import.meta.dirname, '../..'));
    expect(roots).toContain(join(import.meta.dirname, '../../../../node_modules'));
    expect(roots.some((r) => r === dir)).toBe(false);
  });

  it('hides the connector\'s secrets even inside a readable path, and keeps the working directory empty', async () => {
    const work = join(dir, 'work');
    await mkdir(join(work, 'ids'), { recursive: true });
    await writeFile(join(work, 'ids', 'svid_key.pem'), 'PRIVATE');
    await writeFile(join(work, 'connector.yaml'), 'servers: { other: { env: { TOKEN: secret } } }');
    await writeFile(join(work, 'data.txt'), 'data');
    const plan = await planSandbox({ egress: 'any', filesystem: { read: [work], write: [] } }, '/bin/sh', [], join(dir), [join(work, 'ids'), join(work, 'connector.yaml')]);
    const script = [`echo "data=$(cat ${work}/data.txt)"`, `echo "ids=$(ls -A ${work}/ids | wc -l)"`, `echo "yaml=$(wc -c < ${work}/connector.yaml)"`, `echo "cwd=$(pwd) $(ls -A . | wc -l)"`].join('; ');
    const cmd = bwrapCommand(plan, '/bin/sh', ['-c', script], undefined);
    const { stdout } = await run(cmd.command, cmd.args, { env: { PATH: '/usr/bin:/bin', ...cmd.env } });
    // The working directory (`dir`) stands in empty but for the mount point of `work` below it.
    expect(stdout.split('\n').filter(Boolean)).toEqual(['data=data', 'ids=0', 'yaml=0', `cwd=${dir} 1`]);
  });

  it('a contained process sees its own PID namespace and no host process', async () => {
    const plan = await planSandbox({ egress: 'any', filesystem: { read: [], write: [] } }, '/bin/sh', [], dir, []);
    const cmd = bwrapCommand(plan, '/bin/sh', ['-c', 'ls /proc | grep -c "^[0-9]"'], undefined);
    const { stdout } = await run(cmd.command, cmd.args, { env: { PATH: '/usr/bin:/bin', ...cmd.env } });
    expect(Number(stdout.trim())).toBeLessThanOrEqual(4);
  });
});

describe('the egress proxy', () => {
  it('tunnels an allowed CONNECT, refuses the rest with 403 before resolving, and reports each refusal', async () => {
    const echo = createServer((s) => s.on('data', (d) => s.end(`pong ${d}`)));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const port = (echo.address() as { port: number }).port;
    const denials: EgressDenial[] = [];
    const socketPath = join(dir, 'proxy.sock');
    const proxy = await EgressProxy.listen({ policy: new EgressPolicy([parseEgressRule(`127.0.0.1:${port}`), parseEgressRule('localhost.example.test')]), socketPath, onDenied: (d) => denials.push(d) });
    const connectVia = (target: string) =>
      new Promise<string>((resolve) => {
        const req = request({ socketPath, method: 'CONNECT', path: target });
        req.once('connect', (res, socket) => {
          if (res.statusCode !== 200) {
            socket.destroy();
            return resolve(`${res.statusCode} ${res.headers['x-switchboard-egress'] ?? ''}`);
          }
          socket.once('data', (d) => {
            socket.destroy();
            resolve(`200 ${d.toString().trim()}`);
          });
          socket.write('ping');
        });
        req.once('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
        req.end();
      });
    try {
      expect(await connectVia(`127.0.0.1:${port}`)).toBe('200 pong ping');
      expect(await connectVia('evil.example:443')).toBe('403 denied');
      expect(await connectVia(`127.0.0.1:${port + 1}`)).toBe('403 denied');
      // An allowed name that does not resolve is refused too, with the reason.
      expect(await connectVia('localhost.example.test:443')).toBe('403 denied');
      expect(await connectVia('not-a-target')).toBe('400 ');
      expect(denials.map((d) => `${d.destination}:${d.port}`)).toEqual(['evil.example:443', `127.0.0.1:${port + 1}`, 'localhost.example.test:443']);
      expect(denials[2]?.reason).toMatch(/^localhost\.example\.test does not resolve/);
    } finally {
      await proxy.close();
      echo.close();
    }
  });
});

describe('the DNS catcher', () => {
  it('answers every query REFUSED and reports each name, forwarding nothing', async () => {
    const socketPath = join(dir, 'dns.sock');
    const names: string[] = [];
    const catcher = await DnsCatcher.listen(socketPath, (n) => names.push(n));
    try {
      const query = dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'Leak.Attacker.Example' }] });
      const reply = await new Promise<Buffer>((resolve, reject) => {
        const s = connect(socketPath);
        const chunks: Buffer[] = [];
        s.on('data', (c) => chunks.push(c));
        s.on('end', () => resolve(Buffer.concat(chunks)));
        s.on('error', reject);
        s.write(query);
      });
      const answer = dnsPacket.decode(reply);
      expect(answer.id).toBe(4242);
      expect(answer.rcode).toBe('REFUSED');
      expect(answer.answers).toEqual([]);
      expect(names).toEqual(['leak.attacker.example']);
    } finally {
      await catcher.close();
    }
  });
});
