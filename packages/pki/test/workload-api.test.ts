import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  PkiError,
  WORKLOAD_API_SOCKET_ENV,
  WorkloadApiSource,
  encodeForWorkloadApi,
  identityFromWorkloadApi,
  parseWorkloadEndpoint,
  validateX509Svid,
  workloadApiDefinition,
  type Identity,
} from '../src/index.js';
import { createTestCA, startWorkloadApiServer, type TestWorkloadApiServer } from '../src/testing/index.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function socketPath(): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), 'sb-wl-')), 'agent.sock');
}

async function serve(identities: Identity[]): Promise<TestWorkloadApiServer> {
  const server = await startWorkloadApiServer(await socketPath(), identities);
  cleanups.push(() => server.close());
  return server;
}

async function connect(options: Parameters<typeof WorkloadApiSource.connect>[0]): Promise<WorkloadApiSource> {
  const source = await WorkloadApiSource.connect(options);
  cleanups.push(() => source.close());
  return source;
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** watched is a server with one connector identity and a source on it that records every update. */
async function watched() {
  const ca = await createTestCA();
  const first = { svid: await ca.issue('spiffe://example.org/connector/a'), bundle: ca.bundle };
  const server = await serve([first]);
  const source = await connect({ endpoint: server.endpoint });
  const seen: Identity[] = [];
  source.onUpdate((i) => seen.push(i));
  return { ca, first, server, source, seen };
}

function codeOf(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'resolved',
    (err: unknown) => (err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`),
  );
}

describe('parseWorkloadEndpoint: the addresses the SPIFFE Workload Endpoint spec allows', () => {
  it.each([
    ['unix:///run/spire/agent.sock', 'unix:/run/spire/agent.sock'],
    ['unix:/run/spire/agent.sock', 'unix:/run/spire/agent.sock'],
    ['/run/spire/agent.sock', 'unix:/run/spire/agent.sock'],
    ['tcp://127.0.0.1:8081', '127.0.0.1:8081'],
  ])('%s → %s', (address, target) => {
    expect(parseWorkloadEndpoint(address)).toBe(target);
  });

  it.each([
    ['', 'is empty'],
    ['agent.sock', 'is not a URI'],
    ['unix://host/run/agent.sock', 'must not name a host'],
    ['unix:///run/agent.sock?x=1', 'must not have a query'],
    ['tcp://localhost:8081', 'must name an IP address'],
    ['tcp://127.0.0.1', 'needs a port'],
    ['http://127.0.0.1:8081', 'use unix:// or tcp://'],
  ])('refuses %j (%s)', (address, rule) => {
    try {
      parseWorkloadEndpoint(address);
      expect.unreachable();
    } catch (err) {
      expect((err as PkiError).code).toBe('PKI_ERR_WORKLOAD_API_ENDPOINT');
      expect((err as Error).message).toContain(rule);
    }
  });
});

describe('identityFromWorkloadApi: an X509SVID message as an identity', () => {
  it('round-trips a real SVID (chain, PKCS#8 key, bundle) and the result validates against the bundle', async () => {
    const ca = await createTestCA();
    const svid = await ca.issue('spiffe://example.org/connector/a');
    const back = identityFromWorkloadApi(encodeForWorkloadApi({ svid, bundle: ca.bundle }));
    expect(back.svid.id.toString()).toBe('spiffe://example.org/connector/a');
    expect(back.svid.certificates.map((c) => c.fingerprint256)).toEqual(svid.certificates.map((c) => c.fingerprint256));
    expect(back.bundle.toPem()).toBe(ca.bundlePem);
    expect(validateX509Svid(back.svid.certificates, ca.bundles).id.toString()).toBe('spiffe://example.org/connector/a');
  });

  it.each([
    ['a spiffe_id that is not the certificate\'s', (m: ReturnType<typeof encodeForWorkloadApi>) => ({ ...m, spiffeId: 'spiffe://example.org/other' }), "is not the certificate's"],
    ['an empty chain', (m: ReturnType<typeof encodeForWorkloadApi>) => ({ ...m, x509Svid: Buffer.alloc(0) }), 'x509_svid is empty'],
    ['garbage after the chain', (m: ReturnType<typeof encodeForWorkloadApi>) => ({ ...m, x509Svid: Buffer.concat([m.x509Svid, Buffer.from([1, 2, 3])]) }), 'certificate 3 is not DER'],
    ['a key that is not PKCS#8', (m: ReturnType<typeof encodeForWorkloadApi>) => ({ ...m, x509SvidKey: Buffer.from('nope') }), 'not a DER PKCS#8'],
    ['an empty bundle', (m: ReturnType<typeof encodeForWorkloadApi>) => ({ ...m, bundle: Buffer.alloc(0) }), 'bundle is empty'],
  ])('refuses %s (PKI_ERR_SVID_MALFORMED)', async (_what, bend, rule) => {
    const ca = await createTestCA();
    const svid = await ca.issue('spiffe://example.org/connector/a');
    try {
      identityFromWorkloadApi(bend(encodeForWorkloadApi({ svid, bundle: ca.bundle })));
      expect.unreachable();
    } catch (err) {
      expect((err as PkiError).code).toBe('PKI_ERR_SVID_MALFORMED');
      expect((err as Error).message).toContain(rule);
    }
  });

  it('refuses a key that is not the leaf\'s', async () => {
    const ca = await createTestCA();
    const a = await ca.issue('spiffe://example.org/connector/a');
    const b = await ca.issue('spiffe://example.org/connector/a');
    const m = { ...encodeForWorkloadApi({ svid: a, bundle: ca.bundle }), x509SvidKey: encodeForWorkloadApi({ svid: b, bundle: ca.bundle }).x509SvidKey };
    expect(() => identityFromWorkloadApi(m)).toThrow(/does not match the leaf/);
  });
});

describe('WorkloadApiSource: FetchX509SVID over a unix socket', () => {
  it('takes the first identity, sends the workload.spiffe.io header, and delivers a rotation (new key, new certificate) to its listeners', async () => {
    const ca = await createTestCA();
    const first = { svid: await ca.issue('spiffe://example.org/connector/a'), bundle: ca.bundle };
    const server = await serve([first]);
    const source = await connect({ endpoint: server.endpoint });
    expect(source.identity.svid.leaf.fingerprint256).toBe(first.svid.leaf.fingerprint256);
    expect(server.refusedNoHeader).toBe(0);
    const seen: Identity[] = [];
    source.onUpdate((i) => seen.push(i));
    const second = { svid: await ca.issue('spiffe://example.org/connector/a'), bundle: ca.bundle };
    server.rotate(second);
    await until('the rotation', () => seen.length === 1);
    expect(seen[0]?.svid.leaf.fingerprint256).toBe(second.svid.leaf.fingerprint256);
    expect(source.identity.svid.leaf.fingerprint256).toBe(second.svid.leaf.fingerprint256);
    expect(source.status()).toMatchObject({ connected: true, updates: 1, streamErrors: 0 });
    expect(source.healthy()).toBe(true);
  });

  it('takes the endpoint from SPIFFE_ENDPOINT_SOCKET when none is given', async () => {
    const ca = await createTestCA();
    const server = await serve([{ svid: await ca.issue('spiffe://example.org/agent/a'), bundle: ca.bundle }]);
    const saved = process.env[WORKLOAD_API_SOCKET_ENV];
    process.env[WORKLOAD_API_SOCKET_ENV] = server.endpoint;
    cleanups.push(() => (saved === undefined ? delete process.env[WORKLOAD_API_SOCKET_ENV] : (process.env[WORKLOAD_API_SOCKET_ENV] = saved)));
    const source = await connect({});
    expect(source.identity.svid.id.toString()).toBe('spiffe://example.org/agent/a');
  });

  it('picks the SVID named by id or hint among several, and says what was offered when none matches', async () => {
    const ca = await createTestCA();
    const a = { svid: await ca.issue('spiffe://example.org/agent/a'), bundle: ca.bundle };
    const b = { svid: await ca.issue('spiffe://example.org/agent/b'), bundle: ca.bundle };
    const server = await serve([a, b]);
    expect((await connect({ endpoint: server.endpoint })).identity.svid.id.toString()).toBe('spiffe://example.org/agent/a');
    expect((await connect({ endpoint: server.endpoint, id: 'spiffe://example.org/agent/b' })).identity.svid.id.toString()).toBe('spiffe://example.org/agent/b');
    const missing = WorkloadApiSource.connect({ endpoint: server.endpoint, id: 'spiffe://example.org/agent/c', firstTimeoutMs: 2000 });
    await expect(missing).rejects.toThrow(/no X.509-SVID for spiffe:\/\/example.org\/agent\/c; offered: spiffe:\/\/example.org\/agent\/a, spiffe:\/\/example.org\/agent\/b/);
    expect(await codeOf(WorkloadApiSource.connect({ endpoint: server.endpoint, id: 'spiffe://example.org/agent/c', firstTimeoutMs: 2000 }))).toBe('PKI_ERR_WORKLOAD_API_NO_SVID');
  });

  it('re-opens a dropped stream (agent restart) and keeps the identity in hand meanwhile', async () => {
    const { ca, first, server, source, seen } = await watched();
    const callsBefore = server.calls;
    server.dropStreams();
    await until('the stream to re-open', () => server.calls > callsBefore && server.streams === 1);
    expect(source.identity.svid.leaf.fingerprint256).toBe(first.svid.leaf.fingerprint256);
    expect(source.status().streamErrors).toBe(1);
    expect(source.status().lastError).toContain('UNAVAILABLE');
    expect(seen).toHaveLength(0); // the same identity again is not an update
    const second = { svid: await ca.issue('spiffe://example.org/connector/a'), bundle: ca.bundle };
    server.rotate(second);
    await until('the rotation after re-open', () => seen.length === 1);
  });

  it('keeps its identity when a rotation names another SPIFFE ID or is malformed', async () => {
    const { ca, first, server, source, seen } = await watched();
    server.rotate({ svid: await ca.issue('spiffe://example.org/connector/b'), bundle: ca.bundle });
    await until('the refusal', () => source.status().lastError?.includes('another SPIFFE ID') === true);
    server.send({ svids: [{ ...encodeForWorkloadApi(first), x509Svid: Buffer.from([0x30, 0x03, 1, 2, 3]) }] });
    await until('the malformed refusal', () => source.status().lastError?.includes('not DER') === true);
    expect(seen).toHaveLength(0);
    expect(source.identity.svid.leaf.fingerprint256).toBe(first.svid.leaf.fingerprint256);
  });

  it('fails with PKI_ERR_WORKLOAD_API_UNAVAILABLE naming the last status when the server has no identity for us (PERMISSION_DENIED)', async () => {
    const server = await serve([]);
    const p = WorkloadApiSource.connect({ endpoint: server.endpoint, firstTimeoutMs: 1500 });
    await expect(p).rejects.toThrow(/no X.509-SVID from unix:\/\/.* within 1500 ms \(PERMISSION_DENIED: no identity issued\)/);
    expect(server.calls).toBeGreaterThanOrEqual(1);
  });

  it('fails with PKI_ERR_WORKLOAD_API_UNAVAILABLE when nothing listens, and PKI_ERR_WORKLOAD_API_ENDPOINT without an endpoint', async () => {
    expect(await codeOf(WorkloadApiSource.connect({ endpoint: `unix://${await socketPath()}`, firstTimeoutMs: 800 }))).toBe('PKI_ERR_WORKLOAD_API_UNAVAILABLE');
    const saved = process.env[WORKLOAD_API_SOCKET_ENV];
    delete process.env[WORKLOAD_API_SOCKET_ENV];
    cleanups.push(() => (saved === undefined ? undefined : (process.env[WORKLOAD_API_SOCKET_ENV] = saved)));
    expect(await codeOf(WorkloadApiSource.connect({}))).toBe('PKI_ERR_WORKLOAD_API_ENDPOINT');
  });

  it('the test server refuses a call without the workload.spiffe.io header with INVALID_ARGUMENT, as the spec says a server must', async () => {
    const ca = await createTestCA();
    const server = await serve([{ svid: await ca.issue('spiffe://example.org/agent/a'), bundle: ca.bundle }]);
    const Service = workloadApiDefinition().SpiffeWorkloadAPI as grpc.ServiceClientConstructor;
    const client = new Service(parseWorkloadEndpoint(server.endpoint), grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const call = (client as unknown as { FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<unknown> }).FetchX509SVID({}, new grpc.Metadata());
    const code = await new Promise<number>((resolve) => {
      call.on('error', (err: grpc.ServiceError) => resolve(err.code));
      call.on('data', () => resolve(-1));
    });
    expect(code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(server.refusedNoHeader).toBe(1);
  });
});
