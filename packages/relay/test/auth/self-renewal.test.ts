import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { ISSUER_FILES, loadIdentityFiles } from '@switchboard/pki';
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

describe('reloadIssuer: a CA rotation without a restart', () => {
  async function issuerDirOf(ca: Awaited<ReturnType<typeof createTestCA>>, into: string): Promise<void> {
    const full = await mkdtemp(join(tmpdir(), 'sb-ca-'));
    await ca.ca.save(full);
    await mkdir(into, { recursive: true });
    for (const name of Object.values(ISSUER_FILES)) await writeFile(join(into, name), await readFile(join(full, name)));
    await rm(full, { recursive: true, force: true });
  }

  it('refuses an unreadable directory and another trust domain (the issuer stays), then swaps to a new CA and renews the relay at once', async () => {
    const ca = await createTestCA({ trustDomain: 'example.org' });
    dir = await mkdtemp(join(tmpdir(), 'sb-relay-issuer-'));
    const ids = join(dir, 'relay');
    const issuer = join(dir, 'issuer');
    await issuerDirOf(ca, issuer);
    const first = await ca.issue(RELAY_ID, { ttlSeconds: 3600 });
    await ca.writeIdentity(ids, first);
    relay = await startRelay({ listen: '127.0.0.1:0', identity: ids, policy: STANDARD_POLICY, audit: { sink: new MemoryAuditSink() }, renewal: { issuer, ttlSeconds: 3600 }, watchPolicy: false });
    expect(await relay.reloadIssuer()).toBe(false); // unchanged
    await writeFile(join(issuer, ISSUER_FILES.intermediateKey), 'not a key\n');
    expect(await relay.reloadIssuer()).toBe(false);
    const other = await createTestCA({ trustDomain: 'other.org' });
    await issuerDirOf(other, issuer);
    expect(await relay.reloadIssuer()).toBe(false);
    expect((await loadIdentityFiles(ids)).svid.leaf.serialNumber).toBe(first.leaf.serialNumber);
    const next = await createTestCA({ trustDomain: 'example.org' });
    await issuerDirOf(next, issuer);
    expect(await relay.reloadIssuer()).toBe(true);
    const renewed = await loadIdentityFiles(ids);
    expect(renewed.svid.leaf.serialNumber).not.toBe(first.leaf.serialNumber);
    expect(renewed.svid.certificates[1]?.fingerprint256).toBe(next.ca.intermediateCertificate.fingerprint256);
    const agent = await next.issue(SUPPORT);
    const creds = { cert: agent.certificatesPem(), key: agent.privateKeyPem(), ca: next.bundlePem + ca.bundlePem };
    const deadline = Date.now() + 3000;
    let served = (await serialOf(relay.url, creds)).toUpperCase();
    while (served !== renewed.svid.leaf.serialNumber.toUpperCase() && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      served = (await serialOf(relay.url, creds)).toUpperCase();
    }
    expect(served).toBe(renewed.svid.leaf.serialNumber.toUpperCase());
  });
});
