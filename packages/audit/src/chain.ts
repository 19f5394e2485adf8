import { hash } from 'node:crypto';
import { canonicalize, canonicalKey } from '@switchboard/common';
import { AUDIT_RECORD_TYPES, type AuditRecord } from './records.js';

/**
 * The hash rule: a record's `hash` is SHA-256 (lowercase hex) of the UTF-8 bytes of its RFC 8785
 * canonical JSON with every field except `hash` itself (so `seq`, `time` and `prev` are covered).
 * The stored line is the canonical JSON of the whole record, `hash` included, plus `\n`.
 */

const HEX64 = /^[0-9a-f]{64}$/;
const RESERVED = ['seq', 'time', 'prev', 'hash'] as const;
const KNOWN_TYPES = new Set<string>(AUDIT_RECORD_TYPES);

/** sha256Hex returns the SHA-256 of `data` (a string is hashed as UTF-8) in lowercase hex. */
export function sha256Hex(data: string | Uint8Array): string {
  // One-shot hash (Node ≥ 20.12): half the cost of createHash().update().digest() for a record.
  return hash('sha256', data, 'hex');
}

/**
 * digestArguments returns the `argsDigest` of a request: SHA-256 hex of the canonical JSON of its
 * arguments. Throws `TypeError` for a value canonical JSON cannot represent.
 *
 * @example
 * digestArguments({ b: 2, a: 1 }) === digestArguments({ a: 1, b: 2 }); // true
 */
export function digestArguments(args: unknown): string {
  return sha256Hex(canonicalize(args));
}

/** EncodedRecord is a record's stored line (without the newline) and its hash. */
export interface EncodedRecord {
  line: string;
  hash: string;
}

/**
 * encodeRecord computes the hash of `fields` (every field of a record except `hash`) and the
 * canonical line holding them and the hash. Each value is serialized once.
 */
export function encodeRecord(fields: Record<string, unknown>): EncodedRecord {
  return encodeSorted(Object.keys(fields).sort(), fields);
}

/**
 * encodeChained is {@link encodeRecord} of `fields` plus the chain fields `seq`, `time` and `prev`,
 * without building the merged object first (the trail's hot path; same bytes, same hash).
 * `time` and `prev` must be plain ASCII without `"` or `\\` (an ISO 8601 time, a hex hash).
 */
export function encodeChained(fields: Record<string, unknown>, seq: number, time: string, prev: string): EncodedRecord {
  const keys = Object.keys(fields);
  keys.push('prev', 'seq', 'time');
  return encodeSorted(keys.sort(), fields, seq, time, prev);
}

// encodeSorted writes the fields named by `keys` (sorted) in canonical form — `seq`, `time` and
// `prev` from the arguments when given — hashes them, and inserts `hash` at its sorted place.
function encodeSorted(keys: string[], fields: Record<string, unknown>, seq?: number, time?: string, prev?: string): EncodedRecord {
  let pre = ''; // the fields that sort before "hash"
  let post = ''; // and after it
  for (const k of keys) {
    let part: string;
    if (k === 'seq' && seq !== undefined) part = `"seq":${seq}`;
    else if (k === 'time' && time !== undefined) part = `"time":"${time}"`;
    else if (k === 'prev' && prev !== undefined) part = `"prev":"${prev}"`;
    else {
      const v = fields[k];
      if (v === undefined || k === 'hash') continue;
      part = canonicalKey(k) + canonicalize(v);
    }
    if (k < 'hash') pre = pre === '' ? part : `${pre},${part}`;
    else post = post === '' ? part : `${post},${part}`;
  }
  const hash = sha256Hex(pre === '' || post === '' ? `{${pre}${post}}` : `{${pre},${post}}`);
  const h = `"hash":"${hash}"`;
  return { line: `{${pre === '' ? '' : `${pre},`}${h}${post === '' ? '' : `,${post}`}}`, hash };
}

/** LineCheck is what {@link checkLine} finds in one stored line. */
export type LineCheck =
  | { ok: true; record: AuditRecord }
  | { ok: false; kind: 'malformed'; reason: string; record?: Record<string, unknown> }
  | { ok: false; kind: 'hash'; reason: string; record: Record<string, unknown> };

/**
 * checkLine parses one stored line (without its newline) and checks that it is a record (chain
 * fields of the right shape, a known `type`), that its `hash` is the hash of its content, and that
 * the line is exactly the record's canonical JSON (no duplicate keys, no reformatting).
 */
export function checkLine(line: string): LineCheck {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { ok: false, kind: 'malformed', reason: 'not JSON' };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { ok: false, kind: 'malformed', reason: 'not a JSON object' };
  }
  const r = parsed as Record<string, unknown>;
  const shape = shapeProblem(r);
  if (shape !== undefined) return { ok: false, kind: 'malformed', reason: shape, record: r };
  let enc: EncodedRecord;
  try {
    enc = encodeRecord(r);
  } catch (err) {
    return { ok: false, kind: 'malformed', reason: (err as Error).message, record: r };
  }
  if (enc.hash !== r['hash']) return { ok: false, kind: 'hash', reason: 'hash does not match the record content', record: r };
  if (enc.line !== line) return { ok: false, kind: 'hash', reason: 'line is not the canonical form of its record', record: r };
  return { ok: true, record: r as unknown as AuditRecord };
}

function shapeProblem(r: Record<string, unknown>): string | undefined {
  const seq = r['seq'];
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return '`seq` is not a positive integer';
  if (typeof r['time'] !== 'string') return '`time` is not a string';
  if (typeof r['prev'] !== 'string' || !HEX64.test(r['prev'])) return '`prev` is not 64 hex digits';
  if (typeof r['hash'] !== 'string' || !HEX64.test(r['hash'])) return '`hash` is not 64 hex digits';
  if (typeof r['type'] !== 'string' || !KNOWN_TYPES.has(r['type'])) return '`type` is not a known record type';
  if (r['type'] === 'checkpoint') {
    const cs = r['coversSeq'];
    if (typeof cs !== 'number' || !Number.isSafeInteger(cs)) return 'checkpoint `coversSeq` is not an integer';
    if (typeof r['coversHash'] !== 'string' || !HEX64.test(r['coversHash'])) return 'checkpoint `coversHash` is not 64 hex digits';
    if (typeof r['keyId'] !== 'string' || typeof r['sig'] !== 'string') return 'checkpoint without `keyId` or `sig`';
  }
  return undefined;
}

/** @internal assertAppendable checks a record a caller appends (a caller mistake is a TypeError). */
export function assertAppendable(record: unknown): asserts record is Record<string, unknown> {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    throw new TypeError('audit: a record must be a plain object');
  }
  const r = record as Record<string, unknown>;
  if (typeof r['type'] !== 'string' || !KNOWN_TYPES.has(r['type']) || r['type'] === 'checkpoint') {
    throw new TypeError(`audit: unknown record type ${JSON.stringify(r['type'])}`);
  }
  for (const k of RESERVED) {
    if (k in r) throw new TypeError(`audit: \`${k}\` is set by the trail, not by the caller`);
  }
}
