import { describe, expect, it } from 'vitest';
import { canonicalize } from '@switchboard/common';
import { checkLine, digestArguments, encodeRecord, GENESIS_HASH, sha256Hex } from '../src/index.js';
import { encodeChained } from '../src/chain.js';

describe('record hash rule', () => {
  const fields = { type: 'policy.reload', accepted: true, file: 'p.yaml', fileHash: null, error: null, seq: 1, time: '2025-01-01T00:00:00.000Z', prev: GENESIS_HASH };

  it('hashes the canonical JSON without `hash` and stores the canonical JSON with it', () => {
    const { line, hash } = encodeRecord(fields);
    expect(hash).toBe(sha256Hex(canonicalize(fields)));
    expect(line).toBe(canonicalize({ ...fields, hash }));
    expect(checkLine(line)).toMatchObject({ ok: true, record: { seq: 1, hash } });
  });

  it('ignores a `hash` already among the fields', () => {
    expect(encodeRecord({ ...fields, hash: 'f'.repeat(64) })).toEqual(encodeRecord(fields));
  });

  it.each([
    ['a changed value', (l: string) => l.replace('p.yaml', 'q.yaml'), 'hash', /hash does not match/],
    ['a changed hash', (l: string) => l.replace(/"hash":"(.)/, (_m, c: string) => `"hash":"${c === '0' ? '1' : '0'}`), 'hash', /hash does not match/],
    ['a reformatted line', (l: string) => l.replace(',', ', '), 'hash', /not the canonical form/],
    ['a duplicate key', (l: string) => l.replace('{', '{"accepted":false,'), 'hash', /not the canonical form/],
    ['not JSON', (l: string) => l.slice(0, -1), 'malformed', /not JSON/],
    ['an array', () => '[1]', 'malformed', /not a JSON object/],
    ['a bad seq', (l: string) => l.replace('"seq":1', '"seq":0'), 'malformed', /seq/],
    ['an unknown type', (l: string) => l.replace('policy.reload', 'policy.reloaded'), 'malformed', /type/],
  ])('checkLine reports %s', (_n, edit, kind, reason) => {
    const r = checkLine(edit(encodeRecord(fields).line));
    expect(r.ok).toBe(false);
    expect(r).toMatchObject({ kind });
    expect((r as { reason: string }).reason).toMatch(reason);
  });

  it('digestArguments is SHA-256 of the canonical JSON, independent of key order', () => {
    expect(digestArguments({ b: [1, 2], a: 'é' })).toBe(sha256Hex('{"a":"é","b":[1,2]}'));
    expect(digestArguments({ a: 'é', b: [1, 2] })).toBe(digestArguments({ b: [1, 2], a: 'é' }));
    expect(digestArguments({})).toBe(sha256Hex('{}'));
    expect(() => digestArguments({ x: NaN })).toThrow(TypeError);
  });
});

describe('encodeChained', () => {
  const prev = 'ab'.repeat(32);
  const time = '2026-11-25T07:00:00.123Z';
  const cases: Array<Record<string, unknown>> = [
    {},
    { type: 'request', sessionId: 'l1/2', server: 'crm', agent: 'spiffe://example.org/agent/a', direction: 'agent-to-server', requestId: '7', method: 'tools/call', name: 'get', decision: 'allow', ruleId: null, reason: 'ok', argsDigest: null },
    { type: 'response', status: 'ok', latencyMs: 0.125, bytes: 12, redactions: { aws: 1, card: 2 }, errorCode: undefined, name: 'é ünï "q" \\ \n' },
    { a: 1, hash0: true, h: [1, 'two', { z: null, y: -0 }], zeta: 'last', A: 'upper' },
    { zz: 'only after hash' },
    { aa: 'only before hash' },
  ];
  it.each(cases.map((c, i) => [i, c] as const))('case %i gives the bytes and hash of encodeRecord with the chain fields merged in', (_i, fields) => {
    for (const seq of [1, 42, 9_007_199_254_740_991]) {
      expect(encodeChained(fields, seq, time, prev)).toEqual(encodeRecord({ ...fields, seq, time, prev }));
    }
  });
});
