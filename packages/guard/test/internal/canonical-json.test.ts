import { describe, expect, it } from 'vitest';
import { GuardError } from '../../src/errors.js';
import { canonicalJson, sha256Hex } from '../../src/internal/canonical-json.js';

describe('canonicalJson', () => {
  it.each([
    [{ b: 1, a: [3, { d: null, c: 'x' }] }, '{"a":[3,{"c":"x","d":null}],"b":1}'],
    [{ '\u00e9': 1, e: 2, E: 3, _: 4, '10': 5, '9': 6 }, '{"10":5,"9":6,"E":3,"_":4,"e":2,"é":1}'],
    [{ a: undefined, b: 1 }, '{"b":1}'],
    ['line\nbreak "quoted" \u2028', '"line\\nbreak \\"quoted\\" \u2028"'],
    [1e21, '1e+21'],
    [-0, '0'],
    [0.1, '0.1'],
    [true, 'true'],
    [null, 'null'],
    [{}, '{}'],
    [[], '[]'],
  ])('%j → %s', (value, text) => {
    expect(canonicalJson(value)).toBe(text);
  });

  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['bigint', 1n],
    ['function', () => 1],
    ['symbol', Symbol('x')],
    ['undefined in an array', [undefined, 1]],
    ['a lone surrogate', 'a\ud800b'],
  ])('refuses %s', (_n, value) => {
    expect(() => canonicalJson(value)).toThrow(GuardError);
  });

  it('refuses cycles but accepts shared subtrees', () => {
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    expect(() => canonicalJson(cyc)).toThrow(/cycle/);
  });

  it('refuses absurd nesting', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 1001; i++) deep = [deep];
    expect(() => canonicalJson(deep)).toThrow(/deeper/);
  });

  it('sha256Hex hashes UTF-8', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('é')).toBe(sha256Hex('\u00e9'));
  });
});
