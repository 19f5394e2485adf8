import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, resolveLimits } from '../../src/config/limits.js';
import { parseListenAddress } from '../../src/config/listen.js';
import { loadRelayConfig } from '../../src/config/relay-config.js';
import { RelayConfigError } from '../../src/errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const GOOD = `listen: 0.0.0.0:8443
identity: ./ids/relay          # svid.pem, svid_key.pem, bundle.pem
policy: ./policy.yaml
audit: { path: ./audit.log, signingKey: none }
admin: { listen: 127.0.0.1:9464 }
`;

async function write(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

async function configError(text: string): Promise<RelayConfigError> {
  const path = await write('relay.yaml', text);
  try {
    await loadRelayConfig(path);
  } catch (err) {
    expect(err).toBeInstanceOf(RelayConfigError);
    return err as RelayConfigError;
  }
  throw new Error('expected a RelayConfigError');
}

describe('loadRelayConfig', () => {
  it('reads tracing (off without it) and admin.tokenFile; refuses an unknown tracing key and a non-HTTP endpoint', async () => {
    const off = await loadRelayConfig(await write('relay.yaml', GOOD));
    expect(off.tracing).toBeUndefined();
    const on = await loadRelayConfig(await write('relay.yaml', `${GOOD.replace('admin: { listen: 127.0.0.1:9464 }', 'admin: { listen: 127.0.0.1:9464, tokenFile: ./admin.token }')}tracing: { otlp: { endpoint: http://127.0.0.1:4318/v1/traces }, sampleRatio: 0.5 }\n`));
    expect(on.tracing).toEqual({ otlp: { endpoint: 'http://127.0.0.1:4318/v1/traces' }, sampleRatio: 0.5 });
    expect(on.admin).toEqual({ listen: '127.0.0.1:9464', tokenFile: join(dir, 'admin.token') });
    const typo = await configError(`${GOOD}tracing: { otlp: { endpoint: http://127.0.0.1:4318/v1/traces }, sampleRate: 0.5 }\n`);
    expect(typo.message).toMatch(/tracing\.sampleRate: unknown key/);
    const grpc = await configError(`${GOOD}tracing: { otlp: { endpoint: grpc://collector:4317 } }\n`);
    expect(grpc.message).toMatch(/tracing\.otlp\.endpoint: must be an http:\/\/ or https:\/\/ URL/);
  });

  it('reads identity: { workloadApi } (the SPIFFE Workload API) with its optional fields', async () => {
    const c1 = await loadRelayConfig(await write('relay.yaml', GOOD.replace('./ids/relay', '{ workloadApi: { endpoint: "unix:///run/spire/sockets/agent.sock", id: "spiffe://example.org/relay/a" } }')));
    expect(c1.identity).toEqual({ workloadApi: { endpoint: 'unix:///run/spire/sockets/agent.sock', id: 'spiffe://example.org/relay/a' } });
    const c2 = await loadRelayConfig(await write('relay.yaml', GOOD.replace('./ids/relay', '{ workloadApi: {} }')));
    expect(c2.identity).toEqual({ workloadApi: {} });
  });

  it('reads the DESIGN.md example, resolving paths against the file and filling defaults', async () => {
    const path = await write('relay.yaml', GOOD);
    const c = await loadRelayConfig(path);
    expect(c.listen).toBe('0.0.0.0:8443');
    expect(c.identity).toBe(join(dir, 'ids/relay'));
    expect(c.policy).toBe(join(dir, 'policy.yaml'));
    expect(c.audit).toEqual({ path: join(dir, 'audit.log'), durability: 'strict', signingKey: 'none' });
    expect(c.admin).toEqual({ listen: '127.0.0.1:9464' });
    expect(c.limits).toEqual(DEFAULT_LIMITS);
    expect(c.limits).toMatchObject({
      maxMessageBytes: 1048576,
      maxDepth: 64,
      maxServerMessageBytes: 16777216,
      openTimeoutMs: 10000,
      drainTimeoutMs: 30000,
      maxSessionsPerLink: 1024,
    });
    expect(c.enforcement).toEqual({ unknownToolReply: 'jsonrpc-error', replicas: 1 });
  });

  it('keeps absolute paths and reads limits', async () => {
    const path = await write(
      'relay.yaml',
      `listen: "[::1]:0"\nidentity: /etc/sb/ids\npolicy: /etc/sb/policy.yaml\naudit: { path: /var/log/sb.log, signingKey: none }\nlimits: { maxDepth: 32, maxMessageBytes: 65536 }\nenforcement: { unknownToolReply: mcp-sdk }\n`,
    );
    const c = await loadRelayConfig(path);
    expect(c.identity).toBe('/etc/sb/ids');
    expect(c.limits.maxDepth).toBe(32);
    expect(c.limits.maxMessageBytes).toBe(65536);
    expect(c.limits.openTimeoutMs).toBe(10000);
    expect(c.admin).toBeUndefined();
    expect(c.enforcement.unknownToolReply).toBe('mcp-sdk');
  });

  it.each<[string, string, string, RegExp]>([
    ['unknown top-level key', `${GOOD}listn: x\n`, 'listn', /relay\.yaml:6:1: listn: unknown key/],
    ['unknown key in audit', GOOD.replace('{ path: ./audit.log, signingKey: none }', '{ path: ./a.log, signingKey: none, format: json }'), 'audit.format', /audit\.format: unknown key/],
    ['no audit.signingKey', GOOD.replace('{ path: ./audit.log, signingKey: none }', '{ path: ./a.log }'), 'audit.signingKey', /audit\.signingKey: is required: the checkpoint key \(audit_key\.pem from `switchboard ca init`\), or none/],
    ['unknown key in limits', `${GOOD}limits: { maxDepht: 3 }\n`, 'limits.maxDepht', /limits\.maxDepht: unknown key/],
    ['unknown key in admin', GOOD.replace('{ listen: 127.0.0.1:9464 }', '{ listen: 127.0.0.1:9464, tls: true }'), 'admin.tls', /unknown key/],
    ['limit out of range', `${GOOD}limits: { maxDepth: 0 }\n`, 'limits.maxDepth', /between 2 and 1000/],
    ['limit not an integer', `${GOOD}limits: { openTimeoutMs: 1.5 }\n`, 'limits.openTimeoutMs', /integer/],
    ['missing policy', GOOD.replace('policy: ./policy.yaml\n', ''), 'policy', /policy: is required/],
    ['missing audit path', GOOD.replace('{ path: ./audit.log, signingKey: none }', '{ signingKey: none }'), 'audit.path', /required/],
    ['identity not a string', GOOD.replace('./ids/relay', '[a, b]'), 'identity', /identity: must be an identity directory \(svid.pem, svid_key.pem, bundle.pem\), or \{ workloadApi: \{ endpoint \} \}$/],
    ['unknown key in identity.workloadApi', GOOD.replace('./ids/relay', '{ workloadApi: { endpont: unix:///run/a.sock } }'), 'identity.workloadApi.endpont', /identity\.workloadApi\.endpont: unknown key \(allowed here: endpoint, id, hint; did you mean "endpoint"\?\)/],
    ['identity mapping without workloadApi', GOOD.replace('./ids/relay', '{ spire: {} }'), 'identity.spire', /identity\.spire: unknown key \(allowed here: workloadApi\)/],
    ['missing identity', GOOD.replace(/identity: .*\n/, ''), 'identity', /identity: is required: an identity directory, or \{ workloadApi: \{ endpoint \} \}/],
    ['listen without a port', GOOD.replace('0.0.0.0:8443', '0.0.0.0'), 'listen', /host:port/],
    ['listen port too large', GOOD.replace('0.0.0.0:8443', '0.0.0.0:70000'), 'listen', /host:port/],
    ['admin not on loopback', GOOD.replace('127.0.0.1:9464', '0.0.0.0:9464'), 'admin.listen', /loopback/],
    ['unknown enforcement style', `${GOOD}enforcement: { unknownToolReply: silent }\n`, 'enforcement.unknownToolReply', /jsonrpc-error or mcp-sdk/],
    ['enforcement.replicas 0', `${GOOD}enforcement: { replicas: 0 }\n`, 'enforcement.replicas', /between 1 and 1000/],
  ])('%s → RELAY_ERR_CONFIG naming %s', async (_label, text, path, message) => {
    const err = await configError(text);
    expect(err.code).toBe('RELAY_ERR_CONFIG');
    expect(err.path).toBe(path);
    expect(err.message).toMatch(message);
    expect(err.message).toMatch(/^config: /);
  });

  it('says which key a misspelt one was taken for, at its line', async () => {
    const err = await configError(GOOD.replace('audit: { path: ./audit.log, signingKey: none }', 'audit:\n  path: ./audit.log\n  durabilty: batched'));
    expect(err.message).toBe(
      `config: ${join(dir, 'relay.yaml')}:6:3: audit.durabilty: unknown key (allowed here: path, durability, signingKey, checkpointEvery, rotate; did you mean "durability"?)`,
    );
    expect(err.line).toBe(6);
  });

  it('refuses invalid YAML with its line', async () => {
    const err = await configError(`${GOOD}audit: { path: x }\n`);
    expect(err.code).toBe('RELAY_ERR_CONFIG');
    expect(err.line).toBe(6);
    expect(err.message).toMatch(/not valid YAML/);
  });

  it('refuses a document that is not a mapping', async () => {
    const err = await configError('- listen\n');
    expect(err.message).toMatch(/must be a mapping/);
  });

  it('reports a missing file as RELAY_ERR_CONFIG', async () => {
    await expect(loadRelayConfig(join(dir, 'nope.yaml'))).rejects.toMatchObject({ code: 'RELAY_ERR_CONFIG', message: /ENOENT/ });
  });
});

describe('parseListenAddress and resolveLimits', () => {
  it.each<[string, string, number]>([
    ['127.0.0.1:0', '127.0.0.1', 0],
    ['0.0.0.0:8443', '0.0.0.0', 8443],
    ['[::]:8443', '::', 8443],
    ['localhost:9464', 'localhost', 9464],
  ])('%s', (text, host, port) => {
    expect(parseListenAddress(text)).toEqual({ host, port });
  });

  it.each(['8443', ':8443', '[::]', 'a:b', 'host:-1', 'a b:1'])('refuses %s', (text) => {
    expect(() => parseListenAddress(text)).toThrow(RelayConfigError);
  });

  it('fills partial limits and refuses unknown ones', () => {
    expect(resolveLimits({ maxDepth: 8 })).toEqual({ ...DEFAULT_LIMITS, maxDepth: 8 });
    expect(() => resolveLimits({ maxDept: 8 })).toThrow(/limits\.maxDept: unknown key/);
  });
});
