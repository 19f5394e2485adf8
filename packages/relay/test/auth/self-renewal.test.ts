import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { loadIdentityFiles } from '@switchboard/pki';
import { createTestCA } from '@switchboard/pki/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/audit/sink.js';
import { startRelay, type Relay } from '../../src/relay.js';
import { RELAY_ID, STANDARD_POLICY, SUPPORT } from '../helpers/ids.js';

let relay: Relay | undefined;
let dir: string | undefined;

afterEach(async () => {
  await relay?.close();
  relay = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** serialOf does one mTLS request to the catalog and returns the serial of the certificate the relay presented. */
function serialOf(url: string, creds: { cert: string; key: string; ca: string }): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: Number(u.port), path: '/v1/servers', ...creds, checkServerIdentity: () => undefined, agent: false }, (res) => {
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      res.resume();
      res.on('end', () => resolve(serial));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a relay with an issuer renews its own SVID', () => {
  it('at half its lifetime: new files, new connections get the new certificate after the old one expired', async () => {
    const ca = await createTestCA({ trustDomain: 'example.org' });
    dir = await mkdtemp(join(tmpdir(), 'sb-relay-self-'));
    const ids = join(dir, 'relay');
    const first = await ca.issue(RELAY_ID, { ttlSeconds: 4 });
    await ca.writeIdentity(ids, first);
    relay = await startRelay({ listen: '127.0.0.1:0', identity: ids, policy: STANDARD_POLICY, audit: { sink: new MemoryAuditSink() }, renewal: { issuer: ca.ca.issuer(), ttlSeconds: 4 } });
    const agent = await ca.issue(SUPPORT);
    const creds = { cert: agent.certificatesPem(), key: agent.privateKeyPem(), ca: ca.bundlePem };
    expect((await serialOf(relay.url, creds)).toUpperCase()).toBe(first.leaf.serialNumber.toUpperCase());
    // Past the first certificate's notAfter (4 s), with renewals at ~2 s on each 4-second SVID.
    await new Promise((r) => setTimeout(r, 4500));
    const onDisk = await loadIdentityFiles(ids);
    expect(onDisk.svid.id.toString()).toBe(RELAY_ID);
    expect(onDisk.svid.leaf.serialNumber).not.toBe(first.leaf.serialNumber);
    expect(Date.parse(onDisk.svid.leaf.validTo)).toBeGreaterThan(Date.now());
    expect((await serialOf(relay.url, creds)).toUpperCase()).toBe(onDisk.svid.leaf.serialNumber.toUpperCase());
  });
});
