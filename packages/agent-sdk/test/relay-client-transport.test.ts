import { createServer } from 'node:net';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { createTestCA } from '@switchboard/pki/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AccessDeniedError,
  CertificateRejectedError,
  HandshakeError,
  NoConnectorError,
  NotConnectedError,
  RelayClientTransport,
  RelayUnreachableError,
  SessionClosedError,
  type AgentErrorCode,
} from '../src/index.js';
import { AGENT_ID, AgentHarness, harness, wait } from './harness/agent-harness.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const ping: JSONRPCMessage = { jsonrpc: '2.0', id: 1, method: 'ping' };

async function echoRelay(opts: Parameters<typeof harness>[0] = {}) {
  const h = await harness(opts);
  cleanup.push(() => h.relay.close());
  return h;
}

function transport(relay: string, identity: ConstructorParameters<typeof RelayClientTransport>[0]['identity'], extra: Partial<ConstructorParameters<typeof RelayClientTransport>[0]> = {}) {
  const t = new RelayClientTransport({ relay, server: 'echo', identity, ...extra });
  cleanup.push(() => t.close());
  return t;
}

function nextMessage(t: RelayClientTransport): Promise<JSONRPCMessage> {
  return new Promise((resolve) => {
    t.onmessage = (m) => resolve(m);
  });
}

async function rejection(p: Promise<unknown>): Promise<{ code: AgentErrorCode; message: string } & Error> {
  return p.then(
    () => {
      throw new Error('resolved');
    },
    (e: unknown) => e as { code: AgentErrorCode; message: string } & Error,
  );
}

describe('RelayClientTransport', () => {
  it('opens wss://<relay>/v1/agent/<server> with subprotocol mcp and our SVID; one message per text frame', async () => {
    const { relay, identity } = await echoRelay();
    const t = transport(relay.url, identity);
    await t.start();
    expect(relay.upgrades).toEqual([{ path: '/v1/agent/echo', protocol: 'mcp', peer: AGENT_ID }]);
    const got = nextMessage(t);
    await t.send(ping);
    expect(await got).toEqual(ping);
  });

  it('start() twice throws', async () => {
    const { relay, identity } = await echoRelay();
    const t = transport(relay.url, identity);
    await t.start();
    expect(() => t.start()).toThrow(/already started/);
  });

  it('send() rejects before start and after close', async () => {
    const { relay, identity } = await echoRelay();
    const t = transport(relay.url, identity);
    await expect(t.send(ping)).rejects.toBeInstanceOf(NotConnectedError);
    await t.start();
    await t.close();
    await expect(t.send(ping)).rejects.toMatchObject({ code: 'AGENT_ERR_NOT_CONNECTED' });
  });

  it('close() fires onclose exactly once, however often it is called', async () => {
    const { relay, identity } = await echoRelay();
    const t = transport(relay.url, identity);
    let closes = 0;
    t.onclose = () => closes++;
    await t.start();
    await t.close();
    await t.close();
    await wait(50);
    expect(closes).toBe(1);
    expect(t.closeError).toBeUndefined();
  });

  it('close() before start() fires onclose once too', async () => {
    const { relay, identity } = await echoRelay();
    const t = transport(relay.url, identity);
    let closes = 0;
    t.onclose = () => closes++;
    await t.close();
    await t.close();
    expect(closes).toBe(1);
    await expect(t.start()).rejects.toBeInstanceOf(NotConnectedError);
  });

  it('a bad frame goes to onerror and the stream goes on', async () => {
    const { relay, identity } = await echoRelay();
    const t = transport(relay.url, identity);
    const errors: Error[] = [];
    t.onerror = (e) => errors.push(e);
    await t.start();
    const ws = relay.sockets[0]!;
    const got = nextMessage(t);
    ws.send('not json');
    ws.send('[{"jsonrpc":"2.0","method":"a"}]');
    ws.send('{"jsonrpc":"1.0","method":"a"}');
    ws.send(Buffer.from('{"jsonrpc":"2.0","method":"binary"}'), { binary: true });
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/ok' }));
    expect(await got).toEqual({ jsonrpc: '2.0', method: 'notifications/ok' });
    expect(errors.map((e) => e.message)).toEqual([
      'agent: ignored a frame that is not JSON',
      'agent: ignored a frame that is not one JSON-RPC 2.0 message',
      'agent: ignored a frame that is not one JSON-RPC 2.0 message',
      'agent: ignored a binary frame from the relay (MCP messages are text frames)',
    ]);
  });

  it('a close code from the relay surfaces as SessionClosedError via onerror, before onclose', async () => {
    const { relay, identity } = await echoRelay();
    const t = transport(relay.url, identity);
    const events: string[] = [];
    let error: unknown;
    t.onerror = (e) => {
      events.push('error');
      error = e;
    };
    t.onclose = () => events.push('close');
    await t.start();
    relay.sockets[0]!.close(4502, 'backend process exited with code 1');
    await new Promise<void>((r) => {
      const prev = t.onclose;
      t.onclose = () => {
        prev?.();
        r();
      };
    });
    expect(events).toEqual(['error', 'close']);
    expect(error).toBeInstanceOf(SessionClosedError);
    expect(error).toMatchObject({ code: 'AGENT_ERR_SESSION_CLOSED', closeCode: 4502, reason: 'backend process exited with code 1', retryable: true });
    expect((error as Error).message).toBe('agent: session closed (4502): the MCP server behind the connector failed or exited: backend process exited with code 1');
    expect(t.closeError).toBe(error);
    await expect(t.send(ping)).rejects.toBe(error);
  });

  it('a normal close (1000) from the relay is not an error', async () => {
    const { relay, identity } = await echoRelay();
    const t = transport(relay.url, identity);
    const errors: Error[] = [];
    t.onerror = (e) => errors.push(e);
    const closed = new Promise<void>((r) => (t.onclose = r));
    await t.start();
    relay.sockets[0]!.close(1000);
    await closed;
    expect(errors).toEqual([]);
  });

  it('rejects caller mistakes with TypeError', async () => {
    const { identity } = await harness();
    expect(() => new RelayClientTransport({ relay: 'ws://r:1', server: 'echo', identity })).toThrow(TypeError);
    expect(() => new RelayClientTransport({ relay: 'wss://r:1', server: '../admin', identity })).toThrow(TypeError);
    expect(() => new RelayClientTransport({ relay: 'wss://r:1', server: 'echo', identity, relayId: 'not-an-id' })).toThrow(TypeError);
    expect(() => new RelayClientTransport({ relay: 'wss://r:1', server: 'echo', identity, relayId: 'spiffe://other.org/relay' })).toThrow(/outside our trust domain/);
  });
});

describe('RelayClientTransport.start() refusals are typed', () => {
  it.each([
    [403, 'identity may not use this server', AccessDeniedError, 'AGENT_ERR_ACCESS_DENIED', /access denied: spiffe:\/\/example.org\/agent\/support may not use server "echo" \(relay: identity may not use this server\)/],
    [503, 'no connector online', NoConnectorError, 'AGENT_ERR_NO_CONNECTOR', /no connector is online for server "echo"/],
    [400, 'malformed path', HandshakeError, 'AGENT_ERR_HANDSHAKE', /HTTP 400: malformed path/],
  ])('HTTP %i on the upgrade', async (status, body, type, code, message) => {
    const { relay, identity } = await echoRelay({ refuse: () => ({ status, body: `${body}\n` }) });
    const err = await rejection(transport(relay.url, identity).start());
    expect(err).toBeInstanceOf(type);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it('a relay certificate from a foreign CA → CertificateRejectedError (relay-untrusted)', async () => {
    const { ca, identity } = await harness();
    const foreign = await createTestCA({ trustDomain: 'example.org' });
    const relay = await AgentHarness.start({ svid: await foreign.issue('spiffe://example.org/relay/test'), bundlePem: ca.bundlePem, bundles: ca.bundles });
    cleanup.push(() => relay.close());
    const err = await rejection(transport(relay.url, identity).start());
    expect(err).toBeInstanceOf(CertificateRejectedError);
    expect(err).toMatchObject({ code: 'AGENT_ERR_CERT_REJECTED', kind: 'relay-untrusted' });
  });

  it('our certificate from a CA the relay does not trust → CertificateRejectedError (rejected-by-relay)', async () => {
    const { relay, ca } = await echoRelay();
    const other = await createTestCA({ trustDomain: 'example.org' });
    const err = await rejection(transport(relay.url, { svid: await other.issue(AGENT_ID), bundle: ca.bundle }).start());
    expect(err).toBeInstanceOf(CertificateRejectedError);
    expect(err).toMatchObject({ kind: 'rejected-by-relay' });
    expect(err.message).toMatch(/refused our certificate/);
  });

  it('a relay presenting another ID than relayId → CertificateRejectedError (relay-untrusted)', async () => {
    const { relay, identity } = await echoRelay();
    const err = await rejection(transport(relay.url, identity, { relayId: 'spiffe://example.org/relay/prod' }).start());
    expect(err).toMatchObject({ code: 'AGENT_ERR_CERT_REJECTED', kind: 'relay-untrusted' });
    expect(err.message).toContain('presented spiffe://example.org/relay/test, expected spiffe://example.org/relay/prod');
  });

  it('without relayId, an agent of our trust domain posing as the relay → relay-untrusted', async () => {
    const { ca, identity } = await harness();
    const relay = await AgentHarness.start({ svid: await ca.issue('spiffe://example.org/agent/impostor'), bundlePem: ca.bundlePem, bundles: ca.bundles });
    cleanup.push(() => relay.close());
    const err = await rejection(transport(relay.url, identity).start());
    expect(err).toMatchObject({ code: 'AGENT_ERR_CERT_REJECTED', kind: 'relay-untrusted' });
    expect(err.message).toContain('presented spiffe://example.org/agent/impostor, expected spiffe://example.org/relay/* (the default relay rule');
  });

  it.each([
    ['a trust domain root', 'spiffe://example.org'],
    ['a pattern for every workload', 'spiffe://example.org/*'],
    ['another trust domain', 'spiffe://other.org/relay/main'],
  ])('relayId %s is a caller mistake (TypeError)', async (_label, relayId) => {
    const { relay, identity } = await echoRelay();
    expect(() => transport(relay.url, identity, { relayId })).toThrow(TypeError);
  });

  it('our own certificate expired → CertificateRejectedError before dialing', async () => {
    const { relay, ca } = await echoRelay();
    const err = await rejection(transport(relay.url, { svid: await ca.issue(AGENT_ID, { expired: true }), bundle: ca.bundle }).start());
    expect(err).toMatchObject({ code: 'AGENT_ERR_CERT_REJECTED', kind: 'expired' });
    expect(err.message).toMatch(/^agent: our certificate spiffe:\/\/example.org\/agent\/support expired at /);
    expect(relay.connections).toBe(0);
  });

  it('nothing listening → RelayUnreachableError', async () => {
    const { identity } = await harness();
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const err = await rejection(transport(`wss://127.0.0.1:${port}`, identity).start());
    expect(err).toBeInstanceOf(RelayUnreachableError);
    expect(err).toMatchObject({ code: 'AGENT_ERR_RELAY_UNREACHABLE', retryable: true });
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it('a DNS name that does not resolve → RelayUnreachableError', async () => {
    const { identity } = await harness();
    const err = await rejection(transport('wss://relay.invalid:8443', identity).start());
    expect(err).toBeInstanceOf(RelayUnreachableError);
  });
});
