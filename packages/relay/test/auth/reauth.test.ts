import { sign } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { X509Svid } from '@switchboard/pki';
import { createTestCA } from '@switchboard/pki/testing';
import { AGENT_SUBPROTOCOL, CloseCode, FrameType, REAUTH_HEADER, encodeControl, reauthProof, type Frame } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, STANDARD_POLICY, SUPPORT } from '../helpers/ids.js';
import { connect, outcome, startTestRelay, type Creds, type TestRelay } from '../helpers/relay.js';
import { within } from '../helpers/time.js';

let t: TestRelay | undefined;
const harnesses: HarnessConnector[] = [];

afterEach(async () => {
  for (const h of harnesses.splice(0)) h.ws.terminate();
  await t?.close();
  t = undefined;
});

const credsOf = (svid: X509Svid, ca: string): Creds => ({ cert: svid.certificatesPem(), key: svid.privateKeyPem(), ca });

async function shortLink(relay: TestRelay): Promise<HarnessConnector> {
  const svid = await relay.ca.issue(CRM_CONNECTOR, { ttlSeconds: 2 });
  const h = await HarnessConnector.dial(relay, CRM_CONNECTOR, {}, credsOf(svid, relay.ca.bundlePem));
  harnesses.push(h);
  h.hello(['crm']);
  await h.until(() => h.welcome, 'WELCOME');
  return h;
}

async function reauthResult(h: HarnessConnector, payload: object): Promise<Extract<Frame, { type: typeof FrameType.REAUTH_RESULT }>['payload']> {
  const before = h.frames.length;
  h.sendFrame(encodeControl(FrameType.REAUTH, 0, payload));
  await h.until(() => h.frames.slice(before).find((f) => f.type === FrameType.REAUTH_RESULT), 'REAUTH_RESULT');
  const f = h.frames.slice(before).find((x) => x.type === FrameType.REAUTH_RESULT) as Extract<Frame, { type: typeof FrameType.REAUTH_RESULT }>;
  return f.payload;
}

describe('REAUTH on a connector link', () => {
  it('moves the link to a renewed certificate: it outlives the old one, audited and counted', async () => {
    t = await startTestRelay();
    const h = await shortLink(t);
    expect(h.welcome?.reauth).toBe(true);
    const renewed = await t.ca.issue(CRM_CONNECTOR);
    const result = await reauthResult(h, reauthProof(h.socket as TLSSocket, { svid: renewed, bundle: t.ca.bundle }));
    expect(result).toEqual({ ok: true, notAfter: new Date(Date.parse(renewed.leaf.validTo)).toISOString() });
    // The 2-second certificate expires; the link does not.
    await new Promise((r) => setTimeout(r, 2600));
    expect(t.relay.servers()).toEqual(['crm']);
    expect(t.relay.metrics()).toMatchObject({ expiryCloses: 0, reauths: { accepted: 1, refused: 0 } });
    expect(t.audit.records.filter((r) => r.type === 'identity.reauth')).toEqual([
      expect.objectContaining({ peer: CRM_CONNECTOR, accepted: true, newCertSerial: renewed.leaf.serialNumber, on: expect.stringMatching(/^link:/) }),
    ]);
  });

  it.each<[string, (t: TestRelay, h: HarnessConnector) => Promise<object>, RegExp]>([
    ['a proof not made on this connection', async (t) => {
      const renewed = await t.ca.issue(CRM_CONNECTOR);
      const p = reauthProof({ exportKeyingMaterial: () => Buffer.alloc(32, 7) } as unknown as TLSSocket, { svid: renewed, bundle: t.ca.bundle });
      return p;
    }, /the proof does not verify with the new certificate's key on this connection/],
    ['a proof signed by another key', async (t, h) => {
      const renewed = await t.ca.issue(CRM_CONNECTOR);
      const other = await t.ca.issue(CRM_CONNECTOR);
      const p = reauthProof(h.socket as TLSSocket, { svid: renewed, bundle: t.ca.bundle });
      return { ...p, proof: sign('sha256', (h.socket as TLSSocket).exportKeyingMaterial(32, 'EXPORTER-switchboard-reauth-v1', Buffer.alloc(0)), other.privateKey).toString('base64') };
    }, /the proof does not verify/],
    ['a certificate for another SPIFFE ID', async (t, h) => reauthProof(h.socket as TLSSocket, { svid: await t.ca.issue(`${CRM_CONNECTOR}-2`), bundle: t.ca.bundle }), /the new certificate names spiffe:\/\/example\.org\/connector\/crm-2, the connection spiffe:\/\/example\.org\/connector\/crm/],
    ['a certificate from a CA the relay does not trust', async (_t, h) => {
      const foreign = await createTestCA({ trustDomain: 'example.org' });
      return reauthProof(h.socket as TLSSocket, { svid: await foreign.issue(CRM_CONNECTOR), bundle: foreign.bundle });
    }, /x509svid/],
    ['an expired certificate', async (t, h) => reauthProof(h.socket as TLSSocket, { svid: await t.ca.issue(CRM_CONNECTOR, { expired: true }), bundle: t.ca.bundle }), /expired/],
  ])('refuses %s; the link carries on until the old expiry', async (_label, payload, reason) => {
    t = await startTestRelay();
    const h = await shortLink(t);
    const result = await reauthResult(h, await payload(t, h));
    expect(result).toEqual({ ok: false, reason: expect.stringMatching(reason) });
    expect(t.relay.servers()).toEqual(['crm']);
    expect(t.relay.metrics().reauths).toEqual({ accepted: 0, refused: 1 });
    expect(t.audit.records.filter((r) => r.type === 'identity.reauth')).toEqual([expect.objectContaining({ peer: CRM_CONNECTOR, accepted: false, newCertSerial: null })]);
    // Still the old certificate's expiry.
    expect((await within(h.closed, 4000, 'the link to close')).code).toBe(CloseCode.IDENTITY_EXPIRED);
  });

  it('refuses a renewed certificate whose serial is revoked', async () => {
    const ca = await createTestCA({ trustDomain: 'example.org' });
    const renewed = await ca.issue(CRM_CONNECTOR);
    t = await startTestRelay({ ca, policy: { ...STANDARD_POLICY, revoked: { serials: [renewed.leaf.serialNumber] } } });
    const h = await shortLink(t);
    expect(await reauthResult(h, reauthProof(h.socket as TLSSocket, { svid: renewed, bundle: t.ca.bundle }))).toEqual({ ok: false, reason: 'this identity has been revoked' });
  });

  it('closes the link with 1002 for a REAUTH of the wrong shape', async () => {
    t = await startTestRelay();
    const h = await shortLink(t);
    h.sendFrame(encodeControl(FrameType.REAUTH, 0, { chain: 'x', proof: 'y' }));
    expect(await within(h.closed, 3000, 'the link to close')).toEqual({ code: 1002, reason: 'link: REAUTH.chain must be a list of 1 to 8 base64 certificates' });
  });
});

describe('REAUTH on an agent session', () => {
  it('the upgrade says the relay accepts it; a renewed certificate keeps the session past the old expiry', async () => {
    t = await startTestRelay();
    harnesses.push(await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']));
    const short = await t.ca.issue(SUPPORT, { ttlSeconds: 2 });
    const ws = connect(t, '/v1/agent/crm', credsOf(short, t.ca.bundlePem), AGENT_SUBPROTOCOL);
    let socket: TLSSocket | undefined;
    let header: string | undefined;
    ws.once('upgrade', (res: IncomingMessage) => {
      socket = res.socket as TLSSocket;
      header = res.headers[REAUTH_HEADER.toLowerCase()] as string | undefined;
    });
    expect((await outcome(ws)).kind).toBe('open');
    expect(header).toBe('v1');
    const renewed = await t.ca.issue(SUPPORT);
    ws.send(JSON.stringify({ type: 'reauth', ...reauthProof(socket as TLSSocket, { svid: renewed, bundle: t.ca.bundle }) }), { binary: true });
    const answer = await new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString('utf8'))));
    expect(JSON.parse(answer)).toEqual({ type: 'reauth_result', ok: true, notAfter: new Date(Date.parse(renewed.leaf.validTo)).toISOString() });
    const agent = new AgentClient(ws);
    await new Promise((r) => setTimeout(r, 2600));
    expect((await agent.call('tools/call', { name: 'echo', arguments: {} })).result).toBeDefined();
    expect(t.relay.metrics()).toMatchObject({ expiryCloses: 0, reauths: { accepted: 1, refused: 0 } });
    expect(t.audit.records.filter((r) => r.type === 'identity.reauth')).toEqual([expect.objectContaining({ peer: SUPPORT, accepted: true, on: expect.stringMatching(/^session:/) })]);
  });

  it('any other binary message still closes the session with 1003', async () => {
    t = await startTestRelay();
    harnesses.push(await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']));
    const ws = connect(t, '/v1/agent/crm', await t.creds(SUPPORT), AGENT_SUBPROTOCOL);
    expect((await outcome(ws)).kind).toBe('open');
    const agent = new AgentClient(ws);
    ws.send(Buffer.from('{"type":"hello"}'), { binary: true });
    expect((await agent.closedWithin()).code).toBe(1003);
  });
});
