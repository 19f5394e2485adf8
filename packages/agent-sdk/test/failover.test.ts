import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessDeniedError, RelayClientTransport, RelayUnreachableError, connect } from '../src/index.js';
import { harness } from './harness/agent-harness.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** deadRelay is a wss:// URL on a loopback port that nothing listens on. */
async function deadRelay(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `wss://127.0.0.1:${port}`;
}

describe('several relays: a session opens on the first that accepts it', () => {
  it('skips an unreachable relay and opens on the next; attempts say what happened', async () => {
    const { relay, identity } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const dead = await deadRelay();
    const transport = new RelayClientTransport({ relay: [dead, relay.url], server: 'crm', identity });
    cleanup.push(() => transport.close());
    await transport.start();
    expect(transport.url).toBe(`${relay.url}/v1/agent/crm`);
    expect(transport.attempts.map((a) => [a.url, a.error.code])).toEqual([[`${dead}/v1/agent/crm`, 'AGENT_ERR_RELAY_UNREACHABLE']]);
    expect(relay.upgrades).toHaveLength(1);
  });

  it('connect() takes a list too, and the MCP session works through the relay it found', async () => {
    const { relay, identity } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const client = await connect({ relay: [await deadRelay(), relay.url], server: 'crm', identity });
    cleanup.push(() => client.close());
    expect((await client.callTool({ name: 'echo', arguments: { text: 'hi' } })).content).toEqual([{ type: 'text', text: 'hi' }]);
  });

  it('does not fail over a refusal another relay would repeat (403: access denied)', async () => {
    const denying = await harness({ refuse: () => ({ status: 403, body: 'no rule' }) });
    const good = await harness({ mode: 'mcp' });
    cleanup.push(() => denying.relay.close(), () => good.relay.close());
    const transport = new RelayClientTransport({ relay: [denying.relay.url, good.relay.url], server: 'crm', identity: denying.identity });
    await expect(transport.start()).rejects.toBeInstanceOf(AccessDeniedError);
    expect(transport.attempts).toHaveLength(1);
    expect(good.relay.upgrades).toHaveLength(0);
  });

  it('fails over a 503 (no connector online there) to a relay that has one', async () => {
    const busy = await harness({ refuse: () => ({ status: 503, body: 'no connector online' }) });
    const good = await harness({ mode: 'mcp' });
    cleanup.push(() => busy.relay.close(), () => good.relay.close());
    const transport = new RelayClientTransport({ relay: [busy.relay.url, good.relay.url], server: 'crm', identity: busy.identity });
    cleanup.push(() => transport.close());
    await transport.start();
    expect(transport.attempts.map((a) => a.error.code)).toEqual(['AGENT_ERR_NO_CONNECTOR']);
  });

  it('with every relay down: `rounds` rounds with full-jitter backoff between them, then the last error', async () => {
    const a = await deadRelay();
    const b = await deadRelay();
    const draws: number[] = [];
    const transport = new RelayClientTransport({
      relay: [a, b],
      server: 'crm',
      identity: (await harness()).identity,
      failover: { rounds: 3, baseDelayMs: 40, random: () => (draws.push(draws.length), 0.5) },
    });
    const started = Date.now();
    await expect(transport.start()).rejects.toBeInstanceOf(RelayUnreachableError);
    expect(transport.attempts.map((x) => x.url)).toEqual([a, b, a, b, a, b].map((u) => `${u}/v1/agent/crm`));
    // Two backoffs: 0.5 × 40 ms, then 0.5 × 80 ms.
    expect(draws).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(55);
  });

  it('refuses a list with no relay, a duplicate or a non-wss URL (TypeError)', async () => {
    const { identity } = await harness();
    expect(() => new RelayClientTransport({ relay: [], server: 'crm', identity })).toThrow(/at least one relay/);
    expect(() => new RelayClientTransport({ relay: ['wss://r:1', 'wss://r:1/'], server: 'crm', identity })).toThrow(/listed twice/);
    expect(() => new RelayClientTransport({ relay: ['wss://r:1', 'https://r:2'], server: 'crm', identity })).toThrow(/must be a wss:\/\/ URL/);
  });
});
