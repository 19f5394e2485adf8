/**
 * Canonical JSON per RFC 8785 (JSON Canonicalization Scheme) for every value Switchboard hashes or
 * compares by content — audit records and argument digests, pinned tool definitions, argument
 * `enum` entries: `null`, booleans, finite numbers, well-formed strings, arrays and plain objects. Object
 * keys are sorted by their UTF-16 code units, recursively; there is no whitespace; strings and
 * numbers are written as ECMAScript's `JSON.stringify` writes them, which is exactly what JCS
 * prescribes (§3.2.2). Two equal values always give the same bytes, so a hash over them is stable.
 */

/** MAX_CANONICAL_DEPTH bounds nesting (and so catches cycles) before the stack would. */
export const MAX_CANONICAL_DEPTH = 1000;

/**
 * canonicalize returns the RFC 8785 canonical JSON text of `value`.
 *
 * An object property whose value is `undefined` is left out (as `JSON.stringify` does), so
 * optional fields need no special care. Everything JCS cannot represent is a caller mistake and
 * throws `TypeError`: non-finite numbers (`NaN`, `±Infinity`), strings with a lone UTF-16
 * surrogate (I-JSON, RFC 7493 §2.1), `undefined` or holes in arrays, bigints, functions, symbols,
 * and objects other than plain objects and arrays (`Date`, `Map`, `Buffer`, class instances).
 *
 * @example
 * canonicalize({ b: [1, { d: true, c: null }], a: 'é' }); // '{"a":"é","b":[1,{"c":null,"d":true}]}'
 */
export function canonicalize(value: unknown): string {
  return write(value, 0, '$');
}

/** canonicalBytes returns the UTF-8 bytes of {@link canonicalize}`(value)`. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalize(value), 'utf8');
}

const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

// Printable ASCII without `"` and `\\`: written as is, between quotes (the common case, and cheap).
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** canonicalString writes one string as canonical JSON, refusing lone surrogates (a building block for fast encoders). */
export function canonicalString(s: string, where = '$'): string {
  if (PLAIN.test(s)) return `"${s}"`;
  if (!isWellFormed(s)) throw new TypeError(`canonicaljson: lone UTF-16 surrogate in string at ${where}`);
  return JSON.stringify(s);
}

const keyCache = new Map<string, string>();

/** canonicalKey writes an object key followed by `:`; the few distinct keys of a record type are cached. */
export function canonicalKey(k: string, where = '$'): string {
  const hit = keyCache.get(k);
  if (hit !== undefined) return hit;
  const out = `${canonicalString(k, where)}:`;
  if (k.length <= 64 && keyCache.size < 1024) keyCache.set(k, out);
  return out;
}

function write(v: unknown, depth: number, where: string): string {
  switch (typeof v) {
    case 'string':
      return canonicalString(v, where);
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`canonicaljson: non-finite number ${String(v)} at ${where}`);
      // ECMAScript's Number serialization is JCS's (-0 is written 0).
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object':
      break;
    default:
      throw new TypeError(`canonicaljson: ${typeof v} is not a JSON value at ${where}`);
  }
  if (v === null) return 'null';
  if (depth >= MAX_CANONICAL_DEPTH) throw new TypeError(`canonicaljson: nesting deeper than ${MAX_CANONICAL_DEPTH} (or a cycle) at ${where}`);
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      if (!(i in v) || v[i] === undefined) throw new TypeError(`canonicaljson: undefined array element at ${where}[${i}]`);
      if (i > 0) out += ',';
      out += write(v[i], depth + 1, `${where}[${i}]`);
    }
    return `${out}]`;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError(`canonicaljson: only plain objects and arrays are JSON values, got ${describe(v)} at ${where}`);
  }
  const obj = v as Record<string, unknown>;
  // Default sort compares UTF-16 code units, which is the order JCS (§3.2.3) requires.
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const item = obj[k];
    if (item === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += canonicalKey(k, where) + write(item, depth + 1, `${where}.${k}`);
  }
  return `${out}}`;
}

function describe(v: object): string {
  const name = (v as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' ? name : 'an object';
}
