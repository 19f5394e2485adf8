// The relay's own SVID rotates without a restart: new connections get the new certificate; a
// rotation to another SPIFFE ID is refused and the current identity stays.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCA, type TestCA } from '@switchboard/pki/testing';
import type { X509Svid } from '@switchboard/pki';
import { MemoryAuditSink, startRelay, type Relay } from '../../src/index.js';

let ca: TestCA;
let dir: string;
let relay: Relay;
let agent: X509Svid;

beforeAll(async () => {
  ca = await createTestCA({ trustDomain: 'example.org' });
  dir = await mkdtemp(join(tmpdir(), 'sb-relay-id-'));
  await ca.writeIdentity(dir, await ca.issue('spiffe://example.org/relay/main'));
  agent = await ca.issue('spiffe://example.org/agent/a');
  relay = await startRelay({
    listen: '127.0.0.1:0',
    identity: dir,
    policy: { trustDomain: 'example.org', servers: { crm: { connectors: ['spiffe://example.org/connector/crm'] } }, rules: [] },
    audit: { sink: new MemoryAuditSink() },
  });
});

afterAll(async () => {
  await relay?.close();
  await rm(dir, { recursive: true, force: true });
});

function servedSerial(): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: relay.port,
      key: agent.privateKeyPem(),
      cert: agent.certificatesPem(),
      ca: ca.bundlePem,
      checkServerIdentity: () => undefined,
      session: undefined,
    });
    const t = setTimeout(() => reject(new Error('no handshake within 5 s')), 5000);
    s.once('secureConnect', () => {
      clearTimeout(t);
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

async function until(pred: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe('relay identity rotation', () => {
  it('serves a renewed SVID to new connections without a restart', async () => {
    const before = await servedSerial();
    const renewed = await ca.issue('spiffe://example.org/relay/main');
    await ca.writeIdentity(dir, renewed);
    const want = renewed.leaf.serialNumber.toUpperCase();
    expect(want).not.toBe(before.toUpperCase());
    expect(await until(async () => (await servedSerial()).toUpperCase() === want, 5000)).toBe(true);
  });

  it('refuses files that name another SPIFFE ID and keeps the current identity', async () => {
    const current = await servedSerial();
    await ca.writeIdentity(dir, await ca.issue('spiffe://example.org/relay/impostor'));
    expect(await relay.identityReloader!.reload()).toBe(false);
    expect((await servedSerial()).toUpperCase()).toBe(current.toUpperCase());
  });
});
