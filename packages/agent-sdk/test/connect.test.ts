import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessDeniedError, AgentIdentity, connect, IdentityError, SessionClosedError } from '../src/index.js';
import { AGENT_ID, harness } from './harness/agent-harness.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

describe('connect', () => {
  it('returns a connected MCP SDK Client (identity from the three files)', async () => {
    const { relay, ca } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const dir = await mkdtemp(join(tmpdir(), 'sb-agent-'));
    await ca.writeIdentity(dir, await ca.issue(AGENT_ID));
    const client = await connect({ relay: relay.url, server: 'crm', identity: dir, clientInfo: { name: 'test-agent', version: '1.0.0' } });
    cleanup.push(() => client.close());
    expect(client.getServerVersion()).toMatchObject({ name: 'harness-mcp' });
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['echo', 'crash']);
    const r = await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
    expect(r.content).toEqual([{ type: 'text', text: 'hi' }]);
    expect(relay.upgrades[0]).toEqual({ path: '/v1/agent/crm', protocol: 'mcp', peer: AGENT_ID });
  });

  it('shares one AgentIdentity (one TLS context) across sessions', async () => {
    const { relay, identity } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const id = AgentIdentity.from(identity);
    const a = await connect({ relay: relay.url, server: 'a', identity: id });
    const b = await connect({ relay: relay.url, server: 'b', identity: id });
    cleanup.push(() => a.close(), () => b.close());
    expect(id.tlsFor()).toBe(id.tlsFor());
    expect(relay.upgrades.map((u) => u.path)).toEqual(['/v1/agent/a', '/v1/agent/b']);
  });

  it('resumes the TLS session for the next session to the same relay (unless turned off)', async () => {
    const { relay, identity } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const on = AgentIdentity.from(identity);
    const off = AgentIdentity.from(identity, { tlsResumption: false });
    for (const id of [on, on, on, off, off]) {
      const c = await connect({ relay: relay.url, server: 'crm', identity: id });
      await c.close();
    }
    expect(relay.resumed).toEqual([false, true, true, false, false]);
    expect(new Set(relay.upgrades.map((u) => u.peer))).toEqual(new Set([AGENT_ID]));
  });

  it('rejects with the typed refusal (403 → AccessDeniedError)', async () => {
    const { relay, identity } = await harness({ mode: 'mcp', refuse: () => ({ status: 403, body: 'forbidden\n' }) });
    cleanup.push(() => relay.close());
    await expect(connect({ relay: relay.url, server: 'crm', identity })).rejects.toBeInstanceOf(AccessDeniedError);
  });

  it('rejects with IdentityError when the identity directory is missing', async () => {
    await expect(connect({ relay: 'wss://127.0.0.1:1', server: 'crm', identity: '/nonexistent/ids' })).rejects.toBeInstanceOf(IdentityError);
  });

  it('a session the relay ends reaches the client as onerror(SessionClosedError) then onclose', async () => {
    const { relay, identity } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const client = await connect({ relay: relay.url, server: 'crm', identity });
    const errors: Error[] = [];
    client.onerror = (e) => errors.push(e);
    const closed = new Promise<void>((r) => (client.onclose = r));
    await expect(client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow(/Connection closed/);
    await closed;
    expect(errors.some((e) => e instanceof SessionClosedError && e.closeCode === 4502)).toBe(true);
  });
});
