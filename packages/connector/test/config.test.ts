import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IdMatcher } from '@switchboard/pki';
import { describe, expect, it } from 'vitest';
import { loadConnectorConfig, parseConnectorConfig, isLoopbackHost, type ConnectorErrorCode } from '../src/index.js';

const base = { relays: ['wss://relay.example.org:8443'], identity: './ids/crm', servers: { crm: { command: 'node', args: ['./crm.js'] } } };

function fails(input: unknown): { code: ConnectorErrorCode; path: string; message: string } {
  try {
    parseConnectorConfig(input, { baseDir: '/etc/sb' });
  } catch (err) {
    return err as { code: ConnectorErrorCode; path: string; message: string };
  }
  throw new Error('config was accepted');
}

describe('parseConnectorConfig: tracing', () => {
  it('is off without a tracing section; reads one; refuses unknown keys and a ratio out of range', () => {
    expect(parseConnectorConfig(base, { baseDir: '/etc/sb' }).tracing).toBeUndefined();
    expect(parseConnectorConfig({ ...base, tracing: { otlp: { endpoint: 'http://127.0.0.1:4318/v1/traces' }, serviceName: 'connector-east' } }, { baseDir: '/etc/sb' }).tracing).toEqual({
      otlp: { endpoint: 'http://127.0.0.1:4318/v1/traces' },
      serviceName: 'connector-east',
    });
    expect(fails({ ...base, tracing: { otlp: { endpoint: 'http://x:4318/v1/traces', insecure: true } } })).toMatchObject({ code: 'CONNECTOR_ERR_CONFIG_INVALID', message: expect.stringMatching(/tracing\.otlp\.insecure: unknown key/) });
    expect(fails({ ...base, tracing: { otlp: { endpoint: 'http://x:4318/v1/traces' }, sampleRatio: 2 } }).message).toMatch(/tracing\.sampleRatio/);
  });
});

describe('parseConnectorConfig: containment', () => {
  it('reads egress destinations and filesystem paths (relative to the config dir), and the any opt-outs', () => {
    const c = parseConnectorConfig(
      {
        ...base,
        servers: {
          crm: { command: 'node', egress: ['api.example.com', '*.crm.example.com:8443', '10.0.0.0/8:5432', '[2001:db8::/32]:443', '203.0.113.5'], filesystem: { read: ['./data'], write: ['/var/cache/crm'] } },
          open: { command: 'node', egress: 'any', filesystem: 'any' },
        },
      },
      { baseDir: '/etc/sb' },
    );
    const crm = c.servers.crm as { containment: { egress: unknown[]; filesystem: unknown } };
    expect(crm.containment.filesystem).toEqual({ read: ['/etc/sb/data'], write: ['/var/cache/crm'] });
    expect(crm.containment.egress).toEqual([
      { kind: 'domain', name: 'api.example.com', wildcard: false, ports: [443, 80], text: 'api.example.com' },
      { kind: 'domain', name: 'crm.example.com', wildcard: true, ports: [8443], text: '*.crm.example.com:8443' },
      { kind: 'cidr', family: 'ipv4', network: '10.0.0.0', prefix: 8, ports: [5432], text: '10.0.0.0/8:5432' },
      { kind: 'cidr', family: 'ipv6', network: '2001:db8::', prefix: 32, ports: [443], text: '[2001:db8::/32]:443' },
      { kind: 'cidr', family: 'ipv4', network: '203.0.113.5', prefix: 32, ports: [443, 80], text: '203.0.113.5' },
    ]);
    expect((c.servers.open as { containment: unknown }).containment).toEqual({ egress: 'any', filesystem: 'any' });
  });
});

describe('parseConnectorConfig', () => {
  it('normalises a valid config: relative paths against the config dir, kinds inferred', () => {
    const c = parseConnectorConfig(
      {
        ...base,
        relayId: 'spiffe://example.org/relay/main',
        servers: {
          crm: { command: 'node', args: ['./crm.js'], env: { LOG: 'debug' } },
          local: { command: './bin/server', cwd: 'srv' },
          tickets: { url: 'http://127.0.0.1:3000/mcp', headers: { 'x-api-key': 'k' } },
          v6: { url: 'http://[::1]:3000/mcp' },
          named: { url: 'https://localhost/mcp' },
          remote: { url: 'https://mcp.internal.example:443/mcp', allowRemote: true },
        },
        admin: { listen: '127.0.0.1:9465' },
      },
      { baseDir: '/etc/sb' },
    );
    expect(c.relays).toEqual(['wss://relay.example.org:8443']);
    expect(c.identity).toBe('/etc/sb/ids/crm');
    expect((c.relayId as IdMatcher).pattern).toBe('spiffe://example.org/relay/main');
    // Contained by default: no network, nothing of the host's files beyond the system and the program.
    expect(c.servers.crm).toEqual({ kind: 'stdio', command: 'node', args: ['./crm.js'], env: { LOG: 'debug' }, cwd: '/etc/sb', containment: { egress: [], filesystem: { read: [], write: [] } }, pool: undefined, isolation: 'session' });
    expect(c.servers.local).toMatchObject({ kind: 'stdio', command: '/etc/sb/bin/server', cwd: '/etc/sb/srv' });
    expect(c.servers.tickets).toEqual({ kind: 'http', url: 'http://127.0.0.1:3000/mcp', headers: { 'x-api-key': 'k' }, allowRemote: false, isolation: 'session' });
    expect(c.servers.remote).toMatchObject({ kind: 'http', allowRemote: true });
    expect(c.admin).toEqual({ host: '127.0.0.1', port: 9465 });
  });

  it.each([
    ['unknown top-level key', { ...base, relay: 'x' }, 'relay'],
    ['unknown stdio key', { ...base, servers: { crm: { command: 'node', comand: 'x' } } }, 'servers.crm.comand'],
    ['unknown http key', { ...base, servers: { t: { url: 'http://127.0.0.1/mcp', header: {} } } }, 'servers.t.header'],
    ['http key on a stdio server', { ...base, servers: { crm: { command: 'node', url: 'http://127.0.0.1/' } } }, 'servers.crm'],
    ['unknown admin key', { ...base, admin: { listen: '127.0.0.1:1', port: 2 } }, 'admin.port'],
    ['a misspelt filesystem key', { ...base, servers: { crm: { command: 'node', filesystem: { reads: ['/srv'] } } } }, 'servers.crm.filesystem.reads'],
    ['egress on an http server', { ...base, servers: { t: { url: 'http://127.0.0.1/mcp', egress: 'any' } } }, 'servers.t.egress'],
    ['an egress entry that is not a destination', { ...base, servers: { crm: { command: 'node', egress: ['api.example.com', 'not a host'] } } }, 'servers.crm.egress[1]'],
    ['an egress port out of range', { ...base, servers: { crm: { command: 'node', egress: ['api.example.com:70000'] } } }, 'servers.crm.egress[0]'],
    ['an egress /0 block', { ...base, servers: { crm: { command: 'node', egress: ['0.0.0.0/0'] } } }, 'servers.crm.egress[0]'],
    ['egress that is neither a list nor any', { ...base, servers: { crm: { command: 'node', egress: 'all' } } }, 'servers.crm.egress'],
    ['filesystem write of /', { ...base, servers: { crm: { command: 'node', filesystem: { write: ['/'] } } } }, 'servers.crm.filesystem.write[0]'],
  ])('%s is an error naming the key path', (_name, input, path) => {
    const err = fails(input);
    expect(err.code).toBe('CONNECTOR_ERR_CONFIG_INVALID');
    expect(err.path).toBe(path);
    expect(err.message.startsWith(`config: ${path}: `)).toBe(true);
  });

  it.each([
    ['public IP', 'http://10.0.0.5:3000/mcp'],
    ['public host name', 'https://mcp.example.com/mcp'],
    ['0.0.0.0', 'http://0.0.0.0:3000/mcp'],
    ['IPv6 non-loopback', 'http://[fe80::1]:3000/mcp'],
    ['localhost look-alike', 'http://localhost.evil.com/mcp'],
  ])('a url backend on a non-loopback host is refused (%s)', (_name, url) => {
    const err = fails({ ...base, servers: { t: { url } } });
    expect(err.path).toBe('servers.t.url');
    expect(err.message).toMatch(/not a loopback address.*allowRemote: true/);
  });

  it.each([
    ['0.0.0.0', '0.0.0.0:9465'],
    ['a LAN address', '192.168.1.10:9465'],
    ['a host name', 'admin.example.org:9465'],
    ['IPv6 any', '[::]:9465'],
  ])('the admin listener on a non-loopback address is refused (%s)', (_name, listen) => {
    const err = fails({ ...base, admin: { listen } });
    expect(err.path).toBe('admin.listen');
    expect(err.message).toMatch(/loopback/);
  });

  it.each([
    ['no relays', { ...base, relays: [] }, 'relays', /non-empty/],
    ['missing relays', { identity: 'x', servers: base.servers }, 'relays', /required/],
    ['ws: relay (no TLS)', { ...base, relays: ['ws://relay:8443'] }, 'relays[0]', /wss:/],
    ['relay with query', { ...base, relays: ['wss://relay:8443/?a=1'] }, 'relays[0]', /query/],
    ['duplicate relay', { ...base, relays: ['wss://r:1', 'wss://r:1/'] }, 'relays[1]', /duplicate/],
    ['missing identity', { relays: base.relays, servers: base.servers }, 'identity', /required/],
    ['no servers', { ...base, servers: {} }, 'servers', /at least one/],
    ['bad server name', { ...base, servers: { 'a/b': { command: 'x' } } }, 'servers.a/b', /server names/],
    ['neither command nor url', { ...base, servers: { crm: { args: [] } } }, 'servers.crm', /needs "command"/],
    ['numeric arg', { ...base, servers: { crm: { command: 'node', args: [1] } } }, 'servers.crm.args[0]', /string/],
    ['numeric env value', { ...base, servers: { crm: { command: 'node', env: { PORT: 3000 } } } }, 'servers.crm.env.PORT', /quote/],
    ['bad env name', { ...base, servers: { crm: { command: 'node', env: { 'A-B': 'x' } } } }, 'servers.crm.env.A-B', /environment variable/],
    ['url with credentials', { ...base, servers: { t: { url: 'http://u:p@127.0.0.1/mcp' } } }, 'servers.t.url', /credentials/],
    ['non-http url', { ...base, servers: { t: { url: 'ftp://127.0.0.1/mcp' } } }, 'servers.t.url', /http/],
    ['allowRemote not boolean', { ...base, servers: { t: { url: 'http://127.0.0.1/mcp', allowRemote: 'yes' } } }, 'servers.t.allowRemote', /true or false/],
    ['header with CRLF', { ...base, servers: { t: { url: 'http://127.0.0.1/mcp', headers: { a: 'x\r\nb: y' } } } }, 'servers.t.headers.a', /CR, LF/],
    ['relayId not a SPIFFE ID', { ...base, relayId: 'relay.example.org' }, 'relayId', /scheme/],
    ['relayId a trust domain root', { ...base, relayId: 'spiffe://example.org' }, 'relayId', /must name the relay/],
    ['relayId a pattern for every workload', { ...base, relayId: 'spiffe://example.org/*' }, 'relayId', /fixed first path segment/],
    ['relayId a pattern for every path', { ...base, relayId: 'spiffe://example.org/**' }, 'relayId', /fixed first path segment/],
    ['admin without port', { ...base, admin: { listen: '127.0.0.1' } }, 'admin.listen', /host:port/],
    ['document not a mapping', ['x'], '', /mapping/],
    ['enroll url not https', { ...base, enroll: { url: 'http://relay:8444', token: 't', bundle: 'b' } }, 'enroll.url', /must be https:\/\/, not http:/],
    ['enroll without a token', { ...base, enroll: { url: 'https://relay:8444', bundle: 'b' } }, 'enroll.token', /is required: a file holding the enrollment token/],
    ['identity.workloadApi with a misspelt key', { ...base, identity: { workloadApi: { endpont: 'unix:///run/a.sock' } } }, 'identity.workloadApi.endpont', /unknown key \(allowed here: endpoint, id, hint; did you mean "endpoint"\?\)/],
    ['identity a mapping without workloadApi', { ...base, identity: { spire: true } }, 'identity.spire', /unknown key \(allowed here: workloadApi\)/],
    ['enroll with identity from the workload api', { ...base, identity: { workloadApi: {} }, enroll: { url: 'https://relay:8444', token: 't', bundle: 'b' } }, 'enroll', /needs identity to be a directory/],
    ['enroll with a misspelt key', { ...base, enroll: { url: 'https://relay:8444', token: 't', bundel: 'b' } }, 'enroll.bundel', /did you mean "bundle"/],
  ])('%s', (_name, input, path, message) => {
    const err = fails(input);
    expect(err.path).toBe(path);
    expect(err.message).toMatch(message);
  });

  it('isLoopbackHost knows the loopback names', () => {
    expect(['localhost', '127.0.0.1', '127.1.2.3', '[::1]', '::1'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '10.0.0.1', '::', 'localhost.', 'example.com'].some(isLoopbackHost)).toBe(false);
  });
});

describe('loadConnectorConfig', () => {
  it('reads identity: { workloadApi } (the SPIFFE Workload API)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-conf-'));
    const path = join(dir, 'connector.yaml');
    await writeFile(path, 'relays: [wss://relay.example.org:8443]\nidentity:\n  workloadApi: { endpoint: "unix:///run/spire/sockets/agent.sock", hint: crm }\nservers:\n  crm: { command: node }\n');
    expect((await loadConnectorConfig(path)).identity).toEqual({ workloadApi: { endpoint: 'unix:///run/spire/sockets/agent.sock', hint: 'crm' } });
  });

  it('reads YAML and resolves paths against the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-conf-'));
    const path = join(dir, 'connector.yaml');
    await writeFile(path, 'relays: [wss://relay.example.org:8443]\nidentity: ./ids/connector-crm\nservers:\n  crm: { command: node, args: [./crm-server.js] }\n  tickets: { url: http://127.0.0.1:3000/mcp }\n');
    const c = await loadConnectorConfig(path);
    expect(c.identity).toBe(join(dir, 'ids/connector-crm'));
    expect(c.servers.crm).toMatchObject({ kind: 'stdio', cwd: dir });
    expect(c.servers.tickets).toMatchObject({ kind: 'http' });
  });

  it.each([
    ['duplicate keys', 'relays: [wss://a:1]\nrelays: [wss://b:1]\n', /not valid YAML/],
    ['broken YAML', 'relays: [wss://a:1\n', /not valid YAML/],
  ])('refuses %s', async (_name, text, message) => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-conf-'));
    await writeFile(join(dir, 'c.yaml'), text);
    await expect(loadConnectorConfig(join(dir, 'c.yaml'))).rejects.toMatchObject({ code: 'CONNECTOR_ERR_CONFIG_UNREADABLE', message });
  });

  it('reports a missing file', async () => {
    await expect(loadConnectorConfig('/nonexistent/connector.yaml')).rejects.toMatchObject({
      code: 'CONNECTOR_ERR_CONFIG_UNREADABLE',
      message: 'config: cannot read /nonexistent/connector.yaml: ENOENT',
    });
  });
});
