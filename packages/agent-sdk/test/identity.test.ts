import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestCA, startWorkloadApiServer } from '@switchboard/pki/testing';
import { AgentIdentity } from '../src/index.js';

describe('AgentIdentity from the SPIFFE Workload API', () => {
  it('fails with AGENT_ERR_IDENTITY_INVALID naming PKI_ERR_WORKLOAD_API_UNAVAILABLE when nothing serves the endpoint', async () => {
    const endpoint = `unix://${join(await mkdtemp(join(tmpdir(), 'sb-wl-agent-')), 'none.sock')}`;
    const err = await AgentIdentity.fromWorkloadApi({ endpoint, firstTimeoutMs: 500 }).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe('AGENT_ERR_IDENTITY_INVALID');
    expect(err?.message).toMatch(/^agent: cannot get an identity from the workload api: PKI_ERR_WORKLOAD_API_UNAVAILABLE: workload api: no X.509-SVID from unix:\/\/.* within 500 ms/);
  });

  it('open() takes { workloadApi } and follows a rotation; close() ends the stream', async () => {
    const ca = await createTestCA();
    const server = await startWorkloadApiServer(join(await mkdtemp(join(tmpdir(), 'sb-wl-agent-')), 'a.sock'), [{ svid: await ca.issue('spiffe://example.org/agent/a'), bundle: ca.bundle }]);
    try {
      const identity = await AgentIdentity.open({ workloadApi: { endpoint: server.endpoint } });
      expect(identity.fromWorkloadApiSource).toBe(true);
      expect(identity.renewable).toBe(false);
      const replaced: string[] = [];
      identity.onReplaced((next) => replaced.push(next.identity.svid.leaf.serialNumber));
      const next = await ca.issue('spiffe://example.org/agent/a');
      server.rotate({ svid: next, bundle: ca.bundle });
      const end = Date.now() + 5000;
      while (replaced.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(replaced).toEqual([next.leaf.serialNumber]);
      await identity.close();
      const closedAt = Date.now();
      while (server.streams > 0 && Date.now() < closedAt + 2000) await new Promise((r) => setTimeout(r, 20));
      expect(server.streams).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('open() refuses enrollment for an identity that is not a directory', async () => {
    await expect(AgentIdentity.open({ workloadApi: {} }, { enroll: { url: 'https://r:1', token: 't', bundle: 'b' } })).rejects.toThrow(/enrollment needs the identity to be a directory/);
  });
});
