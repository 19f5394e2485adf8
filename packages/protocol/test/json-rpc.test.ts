import { JSONRPCMessageSchema } from '@modelcontextprotocol/sdk/types.js';
import { describe, expect, it } from 'vitest';
import { isJsonRpcMessage } from '../src/json-rpc.js';

const sdkAccepts = (v: unknown): boolean => JSONRPCMessageSchema.safeParse(v).success;

// Messages the SDK accepts and ones it refuses, chosen around each rule of its schema.
const CORPUS: unknown[] = [
  { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } },
  { jsonrpc: '2.0', id: 'a', method: 'ping' },
  { jsonrpc: '2.0', id: 0, method: 'ping', params: {} },
  { jsonrpc: '2.0', id: -7, method: 'ping', params: { _meta: { progressToken: 3 } } },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { progressToken: 'p', other: [1] } } },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { progressToken: 1.5 } } },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { progressToken: null } } },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { 'io.modelcontextprotocol/related-task': { taskId: 't' } } } },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { 'io.modelcontextprotocol/related-task': { taskId: 1 } } } },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { 'io.modelcontextprotocol/related-task': { taskId: 't', x: 1 } } } },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { 'io.modelcontextprotocol/related-task': 't' } } },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: null } },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: [] } },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: { task: { ttl: 'x' } } },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: [] },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: null },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: 'x' },
  { jsonrpc: '2.0', id: 1, method: 'ping', extra: true },
  { jsonrpc: '2.0', id: 1, method: 5 },
  { jsonrpc: '2.0', id: 1, method: null },
  { jsonrpc: '2.0', id: null, method: 'ping' },
  { jsonrpc: '2.0', id: 1.5, method: 'ping' },
  { jsonrpc: '2.0', id: true, method: 'ping' },
  { jsonrpc: '2.0', id: {}, method: 'ping' },
  { jsonrpc: '2.0', id: 2 ** 53, method: 'ping' },
  { jsonrpc: '2.0', id: 2 ** 53 - 1, method: 'ping' },
  { jsonrpc: '2.0', id: -(2 ** 53), method: 'ping' },
  { jsonrpc: '2.0', id: 1e300, method: 'ping' },
  { jsonrpc: '2.0', id: 1, method: 'ping', result: {} },
  { jsonrpc: '2.0', id: 1, method: 'ping', error: { code: 1, message: 'm' } },
  { jsonrpc: '2.0', method: 'notifications/initialized' },
  { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x', _meta: {} } },
  { jsonrpc: '2.0', method: 'notifications/message', params: { _meta: { progressToken: false } } },
  { jsonrpc: '2.0', method: 'n', extra: 1 },
  { jsonrpc: '2.0', method: 'n', params: 1 },
  { jsonrpc: '2.0', method: '' },
  { jsonrpc: '2.0', id: 1, result: {} },
  { jsonrpc: '2.0', id: 'x', result: { content: [{ type: 'text', text: 'hi' }], isError: false } },
  { jsonrpc: '2.0', id: 1, result: { _meta: { progressToken: 'p' } } },
  { jsonrpc: '2.0', id: 1, result: { _meta: { progressToken: {} } } },
  { jsonrpc: '2.0', id: 1, result: { _meta: 'x' } },
  { jsonrpc: '2.0', id: 1, result: [] },
  { jsonrpc: '2.0', id: 1, result: null },
  { jsonrpc: '2.0', id: 1, result: 5 },
  { jsonrpc: '2.0', id: 1, result: 'ok' },
  { jsonrpc: '2.0', result: {} },
  { jsonrpc: '2.0', id: null, result: {} },
  { jsonrpc: '2.0', id: 1, result: {}, extra: 1 },
  { jsonrpc: '2.0', id: 1, result: {}, error: { code: 1, message: 'm' } },
  { jsonrpc: '2.0', id: 1, error: { code: -32601, message: 'Method not found' } },
  { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' } },
  { jsonrpc: '2.0', id: 1, error: { code: 1, message: 'm', data: { anything: [null] } } },
  { jsonrpc: '2.0', id: 1, error: { code: 1, message: 'm', extra: 1 } },
  { jsonrpc: '2.0', id: 1, error: { code: 1.5, message: 'm' } },
  { jsonrpc: '2.0', id: 1, error: { code: 2 ** 53, message: 'm' } },
  { jsonrpc: '2.0', id: 1, error: { code: '1', message: 'm' } },
  { jsonrpc: '2.0', id: 1, error: { code: 1 } },
  { jsonrpc: '2.0', id: 1, error: { code: 1, message: 2 } },
  { jsonrpc: '2.0', id: 1, error: null },
  { jsonrpc: '2.0', id: 1, error: 'e' },
  { jsonrpc: '2.0', id: null, error: { code: 1, message: 'm' } },
  { jsonrpc: '2.0', id: 1.5, error: { code: 1, message: 'm' } },
  { jsonrpc: '2.0', id: 1, error: { code: 1, message: 'm' }, extra: 1 },
  { jsonrpc: '2.0', id: 1 },
  { jsonrpc: '2.0' },
  { jsonrpc: '1.0', id: 1, result: {} },
  { jsonrpc: 2, id: 1, result: {} },
  { id: 1, result: {} },
  [{ jsonrpc: '2.0', id: 1, result: {} }],
  [],
  null,
  'x',
  5,
  true,
  {},
];

/** A deterministic generator of messages near the valid ones: each field replaced, dropped or added. */
function* mutants(seed: number, n: number): Generator<unknown> {
  let s = seed;
  const rand = (k: number): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % k;
  };
  const values: unknown[] = [undefined, null, 0, 1, -1, 1.5, 2 ** 53, '', 'x', true, false, [], [1], {}, { _meta: {} }, { _meta: { progressToken: 'p' } }, { code: 1, message: 'm' }, { code: 1.5, message: 'm' }, { code: 1 }];
  const keys = ['jsonrpc', 'id', 'method', 'params', 'result', 'error', 'extra', '_meta'];
  const bases = CORPUS.filter((m) => typeof m === 'object' && m !== null && !Array.isArray(m)) as Record<string, unknown>[];
  for (let i = 0; i < n; i++) {
    const m: Record<string, unknown> = { ...(bases[rand(bases.length)] as Record<string, unknown>) };
    for (let j = rand(3); j > 0; j--) {
      const k = keys[rand(keys.length)] as string;
      const v = values[rand(values.length)];
      if (v === undefined) delete m[k];
      else m[k] = v;
    }
    // Through JSON, as the messages arrive.
    yield JSON.parse(JSON.stringify(m));
  }
}

describe('isJsonRpcMessage', () => {
  it('accepts exactly what the SDK schema accepts, on a corpus around each rule', () => {
    const disagree = CORPUS.filter((m) => isJsonRpcMessage(m) !== sdkAccepts(m));
    expect(disagree).toEqual([]);
    // The corpus covers both answers.
    expect(CORPUS.filter(sdkAccepts).length).toBeGreaterThan(10);
    expect(CORPUS.filter((m) => !sdkAccepts(m)).length).toBeGreaterThan(10);
  });

  it('agrees with the SDK schema on 20,000 mutated messages', () => {
    const disagree: unknown[] = [];
    let accepted = 0;
    for (const m of mutants(42, 20_000)) {
      const ours = isJsonRpcMessage(m);
      if (ours) accepted++;
      if (ours !== sdkAccepts(m) && disagree.length < 5) disagree.push(m);
    }
    expect(disagree).toEqual([]);
    expect(accepted).toBeGreaterThan(1000);
  });
});
