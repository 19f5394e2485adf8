import { createHash } from 'node:crypto';
import { GuardError } from '../errors.js';

/** Deeper values are refused: a tool definition or enum entry this deep is an attack, not data. */
const MAX_DEPTH = 256;

/**
 * canonicalJson writes `value` as JSON with object keys sorted (by UTF-16 code units, as
 * RFC 8785 does), no whitespace, strings and numbers as `JSON.stringify` writes them, and
 * properties whose value is `undefined` left out. Two values that are equal as JSON (whatever
 * their key order) give the same text. Throws `GUARD_ERR_NOT_JSON` for cycles, non-finite numbers,
 * bigints, functions and symbols.
 */
export function canonicalJson(value: unknown): string {
  const parts: string[] = [];
  write(value, parts, 0, new Set());
  return parts.join('');
}

function fail(rule: string): never {
  throw new GuardError('GUARD_ERR_NOT_JSON', `canonical-json: ${rule}`);
}

function write(value: unknown, out: string[], depth: number, stack: Set<object>): void {
  switch (typeof value) {
    case 'string':
      out.push(JSON.stringify(value));
      return;
    case 'number':
      if (!Number.isFinite(value)) fail(`${value} is not a JSON number`);
      out.push(JSON.stringify(value));
      return;
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'object':
      break;
    default:
      fail(`a ${typeof value} is not a JSON value`);
  }
  if (value === null) {
    out.push('null');
    return;
  }
  if (depth >= MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`);
  if (stack.has(value)) fail('the value contains a cycle');
  stack.add(value);
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(',');
      const item: unknown = value[i];
      // JSON.stringify writes holes and undefined items as null; so do we.
      write(item === undefined ? null : item, out, depth + 1, stack);
    }
    out.push(']');
  } else {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).sort();
    out.push('{');
    let first = true;
    for (const k of keys) {
      const v = obj[k];
      if (v === undefined) continue;
      if (!first) out.push(',');
      first = false;
      out.push(JSON.stringify(k), ':');
      write(v, out, depth + 1, stack);
    }
    out.push('}');
  }
  stack.delete(value);
}

/** sha256Hex returns the lowercase hex SHA-256 digest of `text` encoded as UTF-8. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
