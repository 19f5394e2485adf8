import { describe, expect, it } from 'vitest';
import { JsonScanError, JsonType, MessageShape, scanMessage, spanRaw, spanString, validateStrictJson } from '../../src/message/strict-json.js';

function nest(depth: number, open: string, close: string, inner = '1'): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

describe('validateStrictJson: valid input', () => {
  it.each<[string, string]>([
    ['empty object', '{}'],
    ['empty array', '[]'],
    ['scalars at the top', '0'],
    ['string at the top', '"x"'],
    ['literals', '[true,false,null]'],
    ['numbers', '[0,-0,1,-1,1.5,-1.5e10,1E+2,1e-2,123456789012345678901234567890]'],
    ['escapes', '{"s":"\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00"}'],
    ['unicode text', '{"名前":"値","emoji":"😀"}'],
    ['whitespace everywhere', ' \t\r\n{ "a" : [ 1 , 2 ] , "b" : { } } \n'],
    ['same key in sibling objects', '[{"a":1},{"a":2}]'],
    ['same key at different depths', '{"a":{"a":{"a":1}}}'],
    ['keys differing in case', '{"a":1,"A":2}'],
    ['keys differing by a space', '{"a":1,"a ":2}'],
    ['many distinct keys (set path)', `{${Array.from({ length: 50 }, (_, i) => `"k${i}":${i}`).join(',')}}`],
    ['a JSON-RPC request', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"name":"y"}}}'],
  ])('%s', (_label, text) => {
    expect(validateStrictJson(text)).toEqual({ ok: true });
    expect(() => JSON.parse(text)).not.toThrow();
  });

  it('accepts exactly maxDepth levels of objects, arrays and a mix', () => {
    expect(validateStrictJson(nest(64, '[', ']'))).toEqual({ ok: true });
    expect(validateStrictJson(nest(64, '{"a":', '}'))).toEqual({ ok: true });
    expect(validateStrictJson(nest(32, '{"a":[', ']}'))).toEqual({ ok: true });
    expect(validateStrictJson(nest(3, '[', ']'), 3)).toEqual({ ok: true });
  });
});

describe('validateStrictJson: syntax errors', () => {
  it.each<[string, string]>([
    ['empty input', ''],
    ['only whitespace', '  '],
    ['unclosed object', '{'],
    ['missing value', '{"a":}'],
    ['trailing comma in object', '{"a":1,}'],
    ['trailing comma in array', '[1,]'],
    ['leading zero', '01'],
    ['bare fraction dot', '1.'],
    ['leading dot', '.5'],
    ['plus sign', '+1'],
    ['exponent without digits', '1e'],
    ['bad escape', '"\\x"'],
    ['short unicode escape', '"\\u12"'],
    ['raw control character in a string', '"a\u0001b"'],
    ['raw newline in a string', '"a\nb"'],
    ['truncated literal', 'tru'],
    ['wrong literal case', 'True'],
    ['trailing garbage', '{} x'],
    ['two values', '{}{}'],
    ['byte order mark', '\uFEFF{}'],
    ['single quotes', "{'a':1}"],
    ['NaN', 'NaN'],
    ['Infinity', '[Infinity]'],
    ['comment', '{"a":1 /* c */}'],
    ['unquoted key', '{a:1}'],
    ['missing colon', '{"a" 1}'],
    ['missing comma', '[1 2]'],
    ['unterminated string', '{"a":"b'],
  ])('%s', (_label, text) => {
    const r = validateStrictJson(text);
    expect(r.ok).toBe(false);
    expect(r.ok === false && r.error).toBe('syntax');
    expect(() => JSON.parse(text)).toThrow();
  });
});

describe('validateStrictJson: depth', () => {
  it.each<[string, string, number]>([
    ['65 arrays', nest(65, '[', ']'), 64],
    ['65 objects', nest(65, '{"a":', '}'), 64],
    ['mixed, 66 deep', nest(33, '{"a":[', ']}'), 64],
    ['4 deep with maxDepth 3', nest(4, '[', ']'), 3],
    ['depth error before a later syntax error', `${nest(70, '[', '')}`, 64],
  ])('%s', (_label, text, max) => {
    const r = validateStrictJson(text, max);
    expect(r.ok === false && r.error).toBe('depth');
  });

  it('stops at the first level too deep (a huge nesting costs nothing more)', () => {
    const r = validateStrictJson('['.repeat(1_000_000), 64);
    expect(r).toEqual({ ok: false, error: 'depth', offset: 64 });
  });
});

describe('validateStrictJson: duplicate keys', () => {
  it.each<[string, string]>([
    ['top level', '{"a":1,"a":2}'],
    ['top level, not adjacent', '{"a":1,"b":2,"a":3}'],
    ['nested object', '{"x":{"a":1,"a":2}}'],
    ['object inside an array', '[{"a":1,"a":2}]'],
    ['escaped equals plain', '{"a":1,"\\u0061":2}'],
    ['plain equals escaped', '{"\\u0061":1,"a":2}'],
    ['two different escapes of one key', '{"\\u0061":1,"\\u0041\\u0000":0,"\\u0061":2}'],
    ['solidus escape', '{"/":1,"\\/":2}'],
    ['astral character as surrogate escapes', '{"😀":1,"\\ud83d\\ude00":2}'],
    ['empty key twice', '{"":1,"":2}'],
    ['JSON-RPC params.name twice', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"evil"}}'],
    ['JSON-RPC method twice', '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}'],
    ['large object, duplicate at the end (set path)', `{${Array.from({ length: 40 }, (_, i) => `"k${i}":${i}`).join(',')},"k3":0}`],
    ['large object, escaped duplicate (set path)', `{${Array.from({ length: 40 }, (_, i) => `"k${i}":${i}`).join(',')},"\\u006b3":0}`],
    ['duplicate right after switching to the set', `{${Array.from({ length: 9 }, (_, i) => `"k${i}":${i}`).join(',')},"k8":0}`],
  ])('%s', (_label, text) => {
    const r = validateStrictJson(text);
    expect(r.ok === false && r.error).toBe('duplicate-key');
    // JSON.parse takes these silently: that is the parser differential being closed.
    expect(() => JSON.parse(text)).not.toThrow();
  });

  it('a large object with many keys is linear, not quadratic', () => {
    const text = `{${Array.from({ length: 100_000 }, (_, i) => `"k${i}":0`).join(',')}}`;
    const t0 = performance.now();
    expect(validateStrictJson(text)).toEqual({ ok: true });
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe('validateStrictJson agrees with JSON.parse (differential)', () => {
  // Deterministic pseudo-random generator so a failure is reproducible.
  let seed = 0x2545f491;
  const rnd = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const atoms = ['0', '-1.5e3', '"a"', '"\\u0062"', 'true', 'false', 'null', '{}', '[]', '"é"'];
  function value(depth: number): string {
    const k = rnd(depth > 4 ? 1 : 3);
    if (k === 0) return atoms[rnd(atoms.length)] as string;
    if (k === 1) return `[${Array.from({ length: rnd(4) }, () => value(depth + 1)).join(',')}]`;
    return `{${Array.from({ length: rnd(4) }, (_, i) => `"${String.fromCharCode(97 + i)}${rnd(3)}":${value(depth + 1)}`).join(',')}}`;
  }
  const noise = ['', '"', '\\', ',', ':', '{', '}', '[', ']', ' ', '0', '-', '.', 'e', 'u', 'x', '\u0001'];

  it('on 3,000 mutated documents: never accepts what JSON.parse rejects; only refuses for depth or duplicates', () => {
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      let text = value(0);
      const edits = rnd(3);
      for (let e = 0; e < edits; e++) {
        const at = rnd(text.length + 1);
        const cut = rnd(2);
        text = text.slice(0, at) + (noise[rnd(noise.length)] as string) + text.slice(at + cut);
      }
      let parses = true;
      try {
        JSON.parse(text);
      } catch {
        parses = false;
      }
      const r = validateStrictJson(text, 64);
      if (r.ok) {
        accepted++;
        expect(parses, text).toBe(true);
      } else if (!parses) {
        expect(r.error, text).toBe('syntax');
      } else {
        expect(r.error, text).not.toBe('syntax');
      }
    }
    expect(accepted).toBeGreaterThan(300);
  });
});

describe('scanMessage records the members a decision needs', () => {
  const shape = new MessageShape();
  function scan(text: string): { code: number; buf: Buffer } {
    const buf = Buffer.from(text);
    return { code: scanMessage(buf, 64, shape), buf };
  }

  it('finds jsonrpc, id, method, params and params.name', () => {
    const { code, buf } = scan('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_order","arguments":{"id":1}}}');
    expect(code).toBe(JsonScanError.OK);
    expect(shape.top).toBe(JsonType.OBJECT);
    expect(spanString(buf, shape.jsonrpc)).toBe('2.0');
    expect(shape.id.type).toBe(JsonType.NUMBER);
    expect(spanRaw(buf, shape.id)).toBe('7');
    expect(spanString(buf, shape.method)).toBe('tools/call');
    expect(shape.params.type).toBe(JsonType.OBJECT);
    expect(spanString(buf, shape.name)).toBe('get_order');
    expect(shape.result.present).toBe(false);
  });

  it('decodes escaped keys and values the way JSON.parse does', () => {
    const text = '{"\\u006aso\\u006erpc":"2.0","i\\u0064":"a\\u0062","m\\u0065thod":"tools\\/call","params":{"n\\u0061me":"del\\u0065te"}}';
    const { code, buf } = scan(text);
    expect(code).toBe(JsonScanError.OK);
    const parsed = JSON.parse(text);
    expect(spanString(buf, shape.jsonrpc)).toBe(parsed.jsonrpc);
    expect(spanString(buf, shape.id)).toBe(parsed.id);
    expect(spanString(buf, shape.method)).toBe(parsed.method);
    expect(spanString(buf, shape.name)).toBe(parsed.params.name);
    expect(shape.method.escaped).toBe(true);
  });

  it.each<[string, string]>([
    ['name nested in arguments only', '{"params":{"arguments":{"name":"evil"}}}'],
    ['params as an array', '{"params":[{"name":"x"}]}'],
    ['params one level too deep', '{"x":{"params":{"name":"y"}}}'],
    ['name at the top level', '{"name":"x"}'],
  ])('does not record params.name from elsewhere: %s', (_label, text) => {
    expect(scan(text).code).toBe(JsonScanError.OK);
    expect(shape.name.present).toBe(false);
  });

  it('takes params.name from params even when arguments also has a name', () => {
    const { buf } = scan('{"params":{"arguments":{"name":"evil"},"name":"good"}}');
    expect(spanString(buf, shape.name)).toBe('good');
  });

  it('records the top-level type of a batch and of scalars', () => {
    expect(scan('[{"jsonrpc":"2.0"}]').code).toBe(JsonScanError.OK);
    expect(shape.top).toBe(JsonType.ARRAY);
    expect(scan('"x"').code).toBe(JsonScanError.OK);
    expect(shape.top).toBe(JsonType.STRING);
  });

  it('resets between scans', () => {
    scan('{"method":"a","id":1}');
    scan('{"result":{}}');
    expect(shape.method.present).toBe(false);
    expect(shape.id.present).toBe(false);
    expect(shape.result.present).toBe(true);
  });
});
