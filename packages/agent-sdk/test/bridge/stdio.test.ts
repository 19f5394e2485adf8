import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessDeniedError, runStdioBridge } from '../../src/index.js';
import { harness } from '../harness/agent-harness.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'stdio-client', version: '1' } } };

/** lines collects newline-delimited JSON from a stream. */
function lines(stream: PassThrough): { all: Record<string, unknown>[]; next(pred: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> } {
  const all: Record<string, unknown>[] = [];
  const waiters: { pred: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void }[] = [];
  let buf = '';
  stream.on('data', (c: Buffer) => {
    buf += c.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const m = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
      buf = buf.slice(i + 1);
      all.push(m);
      for (const w of waiters.splice(0)) (w.pred(m) ? w.resolve(m) : waiters.push(w));
    }
  });
  return {
    all,
    next: (pred) => {
      const seen = all.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

describe('stdio bridge', () => {
  it('forwards newline-delimited JSON-RPC both ways and exits 0 when stdin closes', async () => {
    const { relay, identity } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const out = lines(stdout);
    const done = runStdioBridge({ relay: relay.url, server: 'crm', identity, stdin, stdout });
    stdin.write(`${JSON.stringify(INIT)}\n`);
    const init = await out.next((m) => m.id === 1);
    expect(init.result).toMatchObject({ serverInfo: { name: 'harness-mcp' } });
    stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
    stdin.write('this line is not JSON\n');
    stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'via stdio' } } })}\n`);
    expect((await out.next((m) => m.id === 2)).result).toEqual({ content: [{ type: 'text', text: 'via stdio' }] });
    stdin.end();
    expect(await done).toEqual({ exitCode: 0, error: undefined });
    expect(out.all.every((m) => m.jsonrpc === '2.0')).toBe(true);
  });

  it('answers requests written just before stdin closes (a piped one-shot)', async () => {
    const { relay, identity } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const out = lines(stdout);
    stdin.end(`${JSON.stringify(INIT)}\n`);
    expect((await runStdioBridge({ relay: relay.url, server: 'crm', identity, stdin, stdout })).exitCode).toBe(0);
    expect(out.all.find((m) => m.id === 1)?.result).toMatchObject({ serverInfo: { name: 'harness-mcp' } });
  });

  it('exits 1 with the typed error when the relay refuses (403), without touching stdout', async () => {
    const { relay, identity } = await harness({ refuse: () => ({ status: 403, body: 'forbidden\n' }) });
    cleanup.push(() => relay.close());
    const stdout = new PassThrough();
    const out = lines(stdout);
    const r = await runStdioBridge({ relay: relay.url, server: 'crm', identity, stdin: new PassThrough(), stdout });
    expect(r.exitCode).toBe(1);
    expect(r.error).toBeInstanceOf(AccessDeniedError);
    expect(out.all).toEqual([]);
  });

  it('with --no-reopen, exits 1 when the relay ends the session (backend died: 4502)', async () => {
    const { relay, identity } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const out = lines(stdout);
    const done = runStdioBridge({ relay: relay.url, server: 'crm', identity, stdin, stdout, reopen: false });
    stdin.write(`${JSON.stringify(INIT)}\n`);
    await out.next((m) => m.id === 1);
    stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'crash', arguments: {} } })}\n`);
    const r = await done;
    expect(r.exitCode).toBe(1);
    expect(r.error).toMatchObject({ code: 'AGENT_ERR_SESSION_CLOSED', closeCode: 4502 });
  });

  it('by default opens a new session when the backend dies (4502), replaying initialize: the client carries on', async () => {
    const { relay, identity } = await harness({ mode: 'mcp' });
    cleanup.push(() => relay.close());
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const out = lines(stdout);
    const done = runStdioBridge({ relay: relay.url, server: 'crm', identity, stdin, stdout });
    stdin.write(`${JSON.stringify(INIT)}\n`);
    await out.next((m) => m.id === 1);
    stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
    stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'crash', arguments: {} } })}\n`);
    const lost = await out.next((m) => m.id === 2);
    expect((lost.error as { code: number }).code).toBeLessThan(0);
    await new Promise((r) => setTimeout(r, 100));
    stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { text: 'again' } } })}\n`);
    const again = await out.next((m) => m.id === 3);
    expect(again.result).toEqual({ content: [{ type: 'text', text: 'again' }] });
    // Two sessions at the relay; the client saw one initialize answer (its own) and no other.
    expect(relay.upgrades).toHaveLength(2);
    expect(out.all.filter((m) => m.id === 1)).toHaveLength(1);
    expect(out.all.filter((m) => typeof m.id === 'string')).toEqual([]);
    stdin.end();
    expect((await done).exitCode).toBe(0);
  });
});
