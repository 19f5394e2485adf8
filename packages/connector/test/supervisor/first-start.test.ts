import { createServer } from 'node:net';
import { SpiffeId } from '@switchboard/pki';
import { createTestCA } from '@switchboard/pki/testing';
import { CloseCode, FrameType } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConnectorConfig, startConnector, type Connector, type ConnectorErrorCode } from '../../src/index.js';
import { HarnessRelay, until } from '../harness/relay-harness.js';
import { CONNECTOR_ID, echoConfig, ECHO_SERVER, setup } from '../harness/setup.js';

const fast = { backoff: { baseMs: 10, capMs: 50 }, drainTimeoutMs: 0 };
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function failure(connector: Connector): Promise<{ code: ConnectorErrorCode; message: string }> {
  cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
  const err = await connector.ready().then(
    () => {
      throw new Error('ready() resolved');
    },
    (e: unknown) => e as { code: ConnectorErrorCode; message: string },
  );
  await expect(connector.wait()).rejects.toBe(err);
  return err;
}

describe('first start: the relay refuses us → the connector gives up with a clear error', () => {
  it('HTTP 403 on the upgrade', async () => {
    const { harness, identity } = await setup({ upgradeStatus: () => 403 });
    cleanup.push(() => harness.close());
    const err = await failure(await startConnector(echoConfig([harness.url], identity), fast));
    expect(err.code).toBe('CONNECTOR_ERR_IDENTITY_REJECTED');
    expect(err.message).toMatch(/HTTP 403: identity may not serve any server/);
    expect(harness.connections).toBe(1);
  });

  it('TLS alert: the relay does not trust our certificate', async () => {
    const { harness, ca } = await setup();
    cleanup.push(() => harness.close());
    // Same trust domain, other CA: we trust the relay, the relay does not trust us.
    const other = await createTestCA({ trustDomain: 'example.org' });
    const svid = await other.issue(CONNECTOR_ID);
    const err = await failure(await startConnector(echoConfig([harness.url], { svid, bundle: ca.bundle }), fast));
    expect(err.code).toBe('CONNECTOR_ERR_IDENTITY_REJECTED');
    expect(err.message).toMatch(/without accepting our certificate/);
  });

  it('the relay presents a certificate our bundle does not trust', async () => {
    const { ca, identity } = await setup();
    const foreign = await createTestCA({ trustDomain: 'example.org' });
    const harness = await HarnessRelay.start({ svid: await foreign.issue('spiffe://example.org/relay/test'), bundlePem: ca.bundlePem, bundles: ca.bundles });
    cleanup.push(() => harness.close());
    const err = await failure(await startConnector(echoConfig([harness.url], identity), fast));
    expect(err.code).toBe('CONNECTOR_ERR_RELAY_UNTRUSTED');
    expect(harness.links).toHaveLength(0);
  });

  it('the relay presents another SPIFFE ID than relayId', async () => {
    const { harness, identity } = await setup();
    cleanup.push(() => harness.close());
    const config = { ...echoConfig([harness.url], identity), relayId: SpiffeId.parse('spiffe://example.org/relay/prod') };
    const err = await failure(await startConnector(config, fast));
    expect(err.code).toBe('CONNECTOR_ERR_RELAY_UNTRUSTED');
    expect(err.message).toContain('relay presented spiffe://example.org/relay/test, expected spiffe://example.org/relay/prod');
  });

  it('without relayId, a workload of our trust domain that is not under /relay/ is not taken for the relay', async () => {
    const { ca, identity } = await setup();
    // Another connector (a real SVID of our trust domain, from our CA) poses as the relay.
    const harness = await HarnessRelay.start({ svid: await ca.issue('spiffe://example.org/connector/other'), bundlePem: ca.bundlePem, bundles: ca.bundles });
    cleanup.push(() => harness.close());
    const err = await failure(await startConnector(echoConfig([harness.url], identity), fast));
    expect(err.code).toBe('CONNECTOR_ERR_RELAY_UNTRUSTED');
    expect(err.message).toContain(
      "relay presented spiffe://example.org/connector/other, expected spiffe://example.org/relay/* (the default relay rule; set relayId to the relay's SPIFFE ID)",
    );
    expect(harness.links).toHaveLength(0);
  });

  it('relayId may be a pattern: spiffe://example.org/relay/* accepts relay/test', async () => {
    const { harness, identity } = await setup();
    cleanup.push(() => harness.close());
    const connector = await startConnector({ ...echoConfig([harness.url], identity), relayId: 'spiffe://example.org/relay/*' }, fast);
    cleanup.push(() => connector.close());
    await connector.ready();
    expect(connector.links().map((l) => l.relayId)).toEqual(['spiffe://example.org/relay/test']);
  });

  it('the relay presents an ID outside our trust domain (no relayId set)', async () => {
    const { ca, identity } = await setup();
    // The relay's certificate chains to our CA (OpenSSL accepts it) but names another trust domain.
    const svid = await ca.issue('spiffe://example.org/relay/x', { uris: ['spiffe://evil.example/relay/x'] });
    const harness = await HarnessRelay.start({ svid, bundlePem: ca.bundlePem, bundles: ca.bundles });
    cleanup.push(() => harness.close());
    const err = await failure(await startConnector(echoConfig([harness.url], { svid: identity.svid, bundle: identity.bundle }), fast));
    expect(err.code).toBe('CONNECTOR_ERR_RELAY_UNTRUSTED');
  });

  it('WELCOME accepts none of our servers', async () => {
    const { harness, identity } = await setup({ welcome: () => ({ accepted: [], rejected: [{ server: 'echo', reason: 'not in policy' }] }) });
    cleanup.push(() => harness.close());
    const err = await failure(await startConnector(echoConfig([harness.url], identity), fast));
    expect(err.code).toBe('CONNECTOR_ERR_NO_SERVERS_ACCEPTED');
    expect(err.message).toBe('link: the relay accepted none of our servers: echo (not in policy)');
  });

  it('WELCOME with a protocol version we do not speak: close 1002 and give up', async () => {
    const { harness, identity } = await setup({ welcome: (h) => ({ accepted: h.servers, version: 2 }) });
    cleanup.push(() => harness.close());
    const err = await failure(await startConnector(echoConfig([harness.url], identity), fast));
    expect(err.code).toBe('CONNECTOR_ERR_PROTOCOL_VERSION');
    expect((await (await harness.link(1)).whenClosed()).code).toBe(CloseCode.PROTOCOL_ERROR);
  });

  it('our own certificate expired: startConnector refuses before dialing', async () => {
    const { harness, ca } = await setup();
    cleanup.push(() => harness.close());
    const svid = await ca.issue(CONNECTOR_ID, { expired: true });
    await expect(startConnector(echoConfig([harness.url], { svid, bundle: ca.bundle }), fast)).rejects.toMatchObject({
      code: 'CONNECTOR_ERR_IDENTITY_EXPIRED',
      message: expect.stringMatching(/^identity: our certificate spiffe:\/\/example.org\/connector\/crm expired at /),
    });
    expect(harness.connections).toBe(0);
  });

  it('a relayId outside our trust domain is refused at start', async () => {
    const { identity } = await setup();
    const config = parseConnectorConfig({ relays: ['wss://127.0.0.1:1'], identity, relayId: 'spiffe://other.org/relay', servers: { echo: { command: 'node', args: [ECHO_SERVER] } } });
    await expect(startConnector(config, fast)).rejects.toMatchObject({ code: 'CONNECTOR_ERR_IDENTITY_INVALID' });
  });
});

describe('first start: transient failures are retried', () => {
  it('a relay that is not listening yet is redialed with backoff until it comes up', async () => {
    const { identity, ca } = await setup();
    // Reserve a port, free it, start the relay there later.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const connector = await startConnector(echoConfig([`wss://127.0.0.1:${port}`], identity), fast);
    cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
    await until(() => (connector.links()[0]?.reconnects ?? 0) >= 2, 5000, 'redials');
    expect(connector.links()[0]?.lastError).toMatch(/ECONNREFUSED/);
    const harness = await HarnessRelay.startOn(port, { svid: await ca.issue('spiffe://example.org/relay/test'), bundlePem: ca.bundlePem, bundles: ca.bundles });
    cleanup.push(() => harness.close());
    await connector.ready();
    const link = await harness.link(1);
    expect((await link.frame((f) => f.type === FrameType.HELLO)).type).toBe(FrameType.HELLO);
  });
});
