import { describe, expect, it } from 'vitest';
import { canonicalize, MAX_CANONICAL_DEPTH } from '../src/index.js';

describe('canonicalize (RFC 8785)', () => {
  it('sorts keys recursively and writes no whitespace', () => {
    expect(canonicalize({ b: [1, { d: true, c: null }], a: 'x', nested: { z: { y: 1, x: [] } } })).toBe(
      '{"a":"x","b":[1,{"c":null,"d":true}],"nested":{"z":{"x":[],"y":1}}}',
    );
  });

  it('orders unicode keys by UTF-16 code units (RFC 8785 §3.2.3 example)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    // The emoji (U+1F600, surrogates D83D DE00) sorts before U+FB33: code-unit order, not code-point order.
    expect(canonicalize(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('matches the RFC 8785 §3.2.2 sample (numbers, string escapes, literals)', () => {
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
    ) as unknown;
    expect(canonicalize(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it.each([
    [0, '0'],
    [-0, '0'],
    [1e21, '1e+21'],
    [1e-7, '1e-7'],
    [0.000001, '0.000001'],
    [-1.5, '-1.5'],
    [9007199254740991, '9007199254740991'],
    [5e-324, '5e-324'],
  ])('writes the number %s as %s', (n, text) => {
    expect(canonicalize(n)).toBe(text);
  });

  it('keeps nested arrays in order and sorts objects inside them', () => {
    expect(canonicalize([[3, [2, [1]]], [{ b: 1, a: [[], {}] }]])).toBe('[[3,[2,[1]]],[{"a":[[],{}],"b":1}]]');
  });

  it('leaves out undefined object members, so optional fields cost nothing', () => {
    expect(canonicalize({ a: 1, b: undefined })).toBe('{"a":1}');
  });

  it('gives equal values the same text whatever their key order', () => {
    expect(canonicalize({ x: { b: 2, a: 1 }, y: [1] })).toBe(canonicalize({ y: [1], x: { a: 1, b: 2 } }));
  });

  it.each([
    ['NaN', { a: NaN }, /non-finite number NaN at \$\.a/],
    ['Infinity', [1, Infinity], /non-finite number Infinity at \$\[1\]/],
    ['-Infinity', -Infinity, /non-finite/],
    ['a lone high surrogate', { s: 'x\ud800' }, /lone UTF-16 surrogate/],
    ['a lone low surrogate key', { '\udc00': 1 }, /lone UTF-16 surrogate/],
    ['a bigint', { n: 1n }, /bigint is not a JSON value/],
    ['a function', { f: () => 1 }, /function is not a JSON value/],
    ['undefined in an array', [1, undefined], /undefined array element at \$\[1\]/],
    ['a hole in an array', [1, , 3], /undefined array element/], // eslint-disable-line no-sparse-arrays
    ['a Date', { d: new Date(0) }, /only plain objects and arrays.*Date/],
    ['a Map', new Map(), /Map/],
    ['undefined at top level', undefined, /undefined is not a JSON value/],
  ])('refuses %s with a TypeError', (_name, value, msg) => {
    expect(() => canonicalize(value)).toThrow(TypeError);
    expect(() => canonicalize(value)).toThrow(msg);
  });

  it('refuses cycles and nesting beyond the bound instead of overflowing the stack', () => {
    const a: Record<string, unknown> = {};
    a['self'] = a;
    expect(() => canonicalize(a)).toThrow(/nesting deeper than/);
    let deep: unknown = 1;
    for (let i = 0; i < MAX_CANONICAL_DEPTH + 1; i++) deep = [deep];
    expect(() => canonicalize(deep)).toThrow(TypeError);
    let ok: unknown = 1;
    for (let i = 0; i < MAX_CANONICAL_DEPTH - 1; i++) ok = [ok];
    expect(canonicalize(ok).length).toBe(2 * (MAX_CANONICAL_DEPTH - 1) + 1);
  });

  it('accepts objects without a prototype', () => {
    const o = Object.create(null) as Record<string, unknown>;
    o['b'] = 1;
    o['a'] = 2;
    expect(canonicalize(o)).toBe('{"a":2,"b":1}');
  });
});
