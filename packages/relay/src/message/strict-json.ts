/**
 * Strict, single-pass JSON validation for the relay's hot path.
 *
 * `JSON.parse` silently keeps the last of two equal keys and accepts any nesting depth; a backend
 * parser may keep the first key instead. Such parser differentials let a message mean one thing to
 * the relay's policy check and another to the server, so every message is scanned here first:
 *
 * - the full JSON grammar (RFC 8259) — the same inputs `JSON.parse` accepts, nothing more;
 * - nesting depth (objects and arrays) at most `maxDepth`;
 * - no duplicate key in any object, comparing keys by their decoded value (`"a"` equals `"\u0061"`).
 *
 * While scanning, the byte spans of the members a JSON-RPC decision needs (`jsonrpc`, `id`,
 * `method`, `params`, `result`, `error` at the top level, and `params.name`) are recorded, so the
 * relay decides without building the message's object tree and forwards the original bytes.
 *
 * The input must be valid UTF-8 (ws validates text frames; link payloads are checked with
 * `buffer.isUtf8` before scanning). The scanner is synchronous and keeps its state in module
 * variables: no allocation per message except for duplicate-key sets of large objects.
 */

/** JsonType tags the type of a scanned value. */
export const JsonType = Object.freeze({
  NONE: 0,
  OBJECT: 1,
  ARRAY: 2,
  STRING: 3,
  NUMBER: 4,
  TRUE: 5,
  FALSE: 6,
  NULL: 7,
} as const);
export type JsonType = (typeof JsonType)[keyof typeof JsonType];

/** JsonScanError tags why a scan failed (`OK` when it did not). */
export const JsonScanError = Object.freeze({
  OK: 0,
  SYNTAX: 1,
  DEPTH: 2,
  DUPLICATE_KEY: 3,
} as const);
export type JsonScanError = (typeof JsonScanError)[keyof typeof JsonScanError];

/** MAX_SUPPORTED_DEPTH bounds `maxDepth`: the scanner recurses once per nesting level. */
export const MAX_SUPPORTED_DEPTH = 1000;

/** Span is where a value sits in the scanned buffer: `[start, end)`, its type, escapes in strings. */
export class Span {
  type: JsonType = JsonType.NONE;
  start = 0;
  end = 0;
  /** escaped is true for a string that contains a backslash escape (decode before comparing). */
  escaped = false;

  /** present reports whether the member was found. */
  get present(): boolean {
    return this.type !== JsonType.NONE;
  }
}

/**
 * MessageShape receives what {@link scanMessage} learned: the top-level type and the spans of the
 * JSON-RPC members. Reused across calls by its owner; read it before the next scan.
 */
export class MessageShape {
  top: JsonType = JsonType.NONE;
  readonly jsonrpc = new Span();
  readonly id = new Span();
  readonly method = new Span();
  readonly params = new Span();
  readonly result = new Span();
  readonly error = new Span();
  /** name is `params.name`, when `params` is an object that has it. */
  readonly name = new Span();
  /** errorOffset is the byte offset where the scan failed. */
  errorOffset = 0;

  reset(): void {
    this.top = JsonType.NONE;
    this.jsonrpc.type = JsonType.NONE;
    this.id.type = JsonType.NONE;
    this.method.type = JsonType.NONE;
    this.params.type = JsonType.NONE;
    this.result.type = JsonType.NONE;
    this.error.type = JsonType.NONE;
    this.name.type = JsonType.NONE;
    this.errorOffset = 0;
  }
}

// ---- scanner state (module-level: the scanner is synchronous and never re-entered) ----

// Objects with at most LINEAR_KEYS keys are checked for duplicates by pairwise comparison of raw
// bytes (no allocation); larger ones switch to a Set of decoded keys, so an object with many keys
// costs O(n), not O(n²).
const LINEAR_KEYS = 8;
const KEY_SLOTS = LINEAR_KEYS * (MAX_SUPPORTED_DEPTH + 2);
const keyStart = new Int32Array(KEY_SLOTS);
const keyEnd = new Int32Array(KEY_SLOTS);
const keyEsc = new Uint8Array(KEY_SLOTS);
let keyTop = 0;

const EMPTY = Buffer.alloc(0);
let B: Buffer = EMPTY;
let P = 0;
let N = 0;
let maxDepthNow = 64;
let err: JsonScanError = JsonScanError.OK;
let lastType: JsonType = JsonType.NONE;
let lastEsc = false;
let shape: MessageShape | null = null;
let inParams = false;

// Member ids recorded at the top level / inside params.
const K_NONE = 0;
const K_JSONRPC = 1;
const K_ID = 2;
const K_METHOD = 3;
const K_PARAMS = 4;
const K_RESULT = 5;
const K_ERROR = 6;
const K_NAME = 7;

function bytes(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}
const KEY_JSONRPC = bytes('"jsonrpc"');
const KEY_ID = bytes('"id"');
const KEY_METHOD = bytes('"method"');
const KEY_PARAMS = bytes('"params"');
const KEY_RESULT = bytes('"result"');
const KEY_ERROR = bytes('"error"');
const KEY_NAME = bytes('"name"');

function fail(code: JsonScanError): false {
  err = code;
  return false;
}

function skipWs(): void {
  while (P < N) {
    const c = B[P] as number;
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) P++;
    else return;
  }
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46));
}

function scanString(): boolean {
  // B[P] is the opening quote. Locals, not module variables, in the per-byte loop: it is the
  // hottest loop of the relay (every string of every message).
  const b = B;
  const n = N;
  let p = P + 1;
  let esc = false;
  for (;;) {
    if (p >= n) {
      P = p;
      return fail(JsonScanError.SYNTAX);
    }
    const c = b[p] as number;
    if (c === 0x22) {
      P = p + 1;
      lastEsc = esc;
      lastType = JsonType.STRING;
      return true;
    }
    if (c >= 0x20 && c !== 0x5c) {
      p++;
      continue;
    }
    if (c < 0x20) {
      P = p;
      return fail(JsonScanError.SYNTAX);
    }
    esc = true;
    const d = b[p + 1];
    if (d === 0x75) {
      if (!isHex(b[p + 2]) || !isHex(b[p + 3]) || !isHex(b[p + 4]) || !isHex(b[p + 5])) {
        P = p;
        return fail(JsonScanError.SYNTAX);
      }
      p += 6;
    } else if (d === 0x22 || d === 0x5c || d === 0x2f || d === 0x62 || d === 0x66 || d === 0x6e || d === 0x72 || d === 0x74) {
      p += 2;
    } else {
      P = p;
      return fail(JsonScanError.SYNTAX);
    }
  }
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

function scanNumber(): boolean {
  if (B[P] === 0x2d) P++;
  const first = B[P];
  if (first === 0x30) P++;
  else if (first !== undefined && first >= 0x31 && first <= 0x39) {
    P++;
    while (isDigit(B[P])) P++;
  } else return fail(JsonScanError.SYNTAX);
  if (B[P] === 0x2e) {
    P++;
    if (!isDigit(B[P])) return fail(JsonScanError.SYNTAX);
    while (isDigit(B[P])) P++;
  }
  const e = B[P];
  if (e === 0x65 || e === 0x45) {
    P++;
    if (B[P] === 0x2b || B[P] === 0x2d) P++;
    if (!isDigit(B[P])) return fail(JsonScanError.SYNTAX);
    while (isDigit(B[P])) P++;
  }
  lastType = JsonType.NUMBER;
  return true;
}

function scanLiteral(word: string, type: JsonType): boolean {
  for (let i = 0; i < word.length; i++) {
    if (B[P + i] !== word.charCodeAt(i)) return fail(JsonScanError.SYNTAX);
  }
  P += word.length;
  lastType = type;
  return true;
}

function scanValue(depth: number): boolean {
  if (P >= N) return fail(JsonScanError.SYNTAX);
  const c = B[P] as number;
  switch (c) {
    case 0x7b:
      return scanObject(depth + 1);
    case 0x5b:
      return scanArray(depth + 1);
    case 0x22:
      return scanString();
    case 0x74:
      return scanLiteral('true', JsonType.TRUE);
    case 0x66:
      return scanLiteral('false', JsonType.FALSE);
    case 0x6e:
      return scanLiteral('null', JsonType.NULL);
    default:
      if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return scanNumber();
      return fail(JsonScanError.SYNTAX);
  }
}

function scanArray(depth: number): boolean {
  if (depth > maxDepthNow) return fail(JsonScanError.DEPTH);
  P++;
  skipWs();
  if (B[P] === 0x5d) {
    P++;
    lastType = JsonType.ARRAY;
    return true;
  }
  const wasInParams = inParams;
  inParams = false;
  for (;;) {
    if (!scanValue(depth)) return false;
    skipWs();
    const c = B[P];
    if (c === 0x2c) {
      P++;
      skipWs();
      continue;
    }
    if (c === 0x5d) {
      P++;
      break;
    }
    return fail(JsonScanError.SYNTAX);
  }
  inParams = wasInParams;
  lastType = JsonType.ARRAY;
  return true;
}

/** keyString decodes the key whose quoted text spans `[s, e)`. */
function keyString(s: number, e: number, esc: boolean): string {
  return esc ? (JSON.parse(B.toString('utf8', s, e)) as string) : B.toString('utf8', s + 1, e - 1);
}

function keysEqual(as: number, ae: number, aesc: boolean, bs: number, be: number, besc: boolean): boolean {
  if (!aesc && !besc) {
    if (ae - as !== be - bs) return false;
    for (let i = 1; i < ae - as - 1; i++) if (B[as + i] !== B[bs + i]) return false;
    return true;
  }
  return keyString(as, ae, aesc) === keyString(bs, be, besc);
}

function rawEquals(s: number, e: number, want: Buffer): boolean {
  if (e - s !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (B[s + i] !== want[i]) return false;
  return true;
}

function topKeyId(s: number, e: number, esc: boolean): number {
  if (esc) {
    switch (keyString(s, e, esc)) {
      case 'jsonrpc': return K_JSONRPC;
      case 'id': return K_ID;
      case 'method': return K_METHOD;
      case 'params': return K_PARAMS;
      case 'result': return K_RESULT;
      case 'error': return K_ERROR;
      default: return K_NONE;
    }
  }
  switch (e - s) {
    case 4: return rawEquals(s, e, KEY_ID) ? K_ID : K_NONE;
    case 7: return rawEquals(s, e, KEY_ERROR) ? K_ERROR : K_NONE;
    case 8:
      if (rawEquals(s, e, KEY_METHOD)) return K_METHOD;
      if (rawEquals(s, e, KEY_PARAMS)) return K_PARAMS;
      if (rawEquals(s, e, KEY_RESULT)) return K_RESULT;
      return K_NONE;
    case 9: return rawEquals(s, e, KEY_JSONRPC) ? K_JSONRPC : K_NONE;
    default: return K_NONE;
  }
}

function record(span: Span, start: number): void {
  span.type = lastType;
  span.start = start;
  span.end = P;
  span.escaped = lastType === JsonType.STRING && lastEsc;
}

function scanObject(depth: number): boolean {
  if (depth > maxDepthNow) return fail(JsonScanError.DEPTH);
  P++;
  skipWs();
  if (B[P] === 0x7d) {
    P++;
    lastType = JsonType.OBJECT;
    return true;
  }
  const base = keyTop;
  const recordTop = depth === 1 && shape !== null;
  const recordName = depth === 2 && inParams;
  let set: Set<string> | undefined;
  for (;;) {
    if (B[P] !== 0x22) return fail(JsonScanError.SYNTAX);
    const ks = P;
    if (!scanString()) return false;
    const ke = P;
    const kesc = lastEsc;
    if (set !== undefined) {
      const k = keyString(ks, ke, kesc);
      if (set.has(k)) return fail(JsonScanError.DUPLICATE_KEY);
      set.add(k);
    } else {
      for (let i = base; i < keyTop; i++) {
        if (keysEqual(keyStart[i] as number, keyEnd[i] as number, keyEsc[i] === 1, ks, ke, kesc)) {
          return fail(JsonScanError.DUPLICATE_KEY);
        }
      }
      if (keyTop - base < LINEAR_KEYS) {
        keyStart[keyTop] = ks;
        keyEnd[keyTop] = ke;
        keyEsc[keyTop] = kesc ? 1 : 0;
        keyTop++;
      } else {
        set = new Set<string>();
        for (let i = base; i < keyTop; i++) set.add(keyString(keyStart[i] as number, keyEnd[i] as number, keyEsc[i] === 1));
        set.add(keyString(ks, ke, kesc));
        keyTop = base;
      }
    }
    skipWs();
    if (B[P] !== 0x3a) return fail(JsonScanError.SYNTAX);
    P++;
    skipWs();
    const vs = P;
    let which = K_NONE;
    if (recordTop) which = topKeyId(ks, ke, kesc);
    else if (recordName && (kesc ? keyString(ks, ke, kesc) === 'name' : rawEquals(ks, ke, KEY_NAME))) which = K_NAME;
    const wasInParams = inParams;
    inParams = which === K_PARAMS;
    if (!scanValue(depth)) return false;
    inParams = wasInParams;
    if (which !== K_NONE) {
      const s = shape as MessageShape;
      switch (which) {
        case K_JSONRPC: record(s.jsonrpc, vs); break;
        case K_ID: record(s.id, vs); break;
        case K_METHOD: record(s.method, vs); break;
        case K_PARAMS: record(s.params, vs); break;
        case K_RESULT: record(s.result, vs); break;
        case K_ERROR: record(s.error, vs); break;
        case K_NAME: record(s.name, vs); break;
      }
    }
    skipWs();
    const c = B[P];
    if (c === 0x2c) {
      P++;
      skipWs();
      continue;
    }
    if (c === 0x7d) {
      P++;
      break;
    }
    return fail(JsonScanError.SYNTAX);
  }
  keyTop = base;
  lastType = JsonType.OBJECT;
  return true;
}

function run(buf: Buffer, maxDepth: number, out: MessageShape | null): JsonScanError {
  if (!(maxDepth >= 1 && maxDepth <= MAX_SUPPORTED_DEPTH)) throw new RangeError(`strict-json: maxDepth must be between 1 and ${MAX_SUPPORTED_DEPTH}`);
  B = buf;
  P = 0;
  N = buf.length;
  maxDepthNow = maxDepth;
  err = JsonScanError.OK;
  keyTop = 0;
  inParams = false;
  shape = out;
  lastType = JsonType.NONE;
  try {
    skipWs();
    let ok = scanValue(0);
    if (ok) {
      if (out !== null) out.top = lastType;
      skipWs();
      if (P !== N) ok = fail(JsonScanError.SYNTAX);
    }
    if (!ok && out !== null) out.errorOffset = P;
    return ok ? JsonScanError.OK : err;
  } finally {
    B = EMPTY;
    shape = null;
  }
}

/**
 * scanMessage validates `buf` strictly (see the module comment) and records the JSON-RPC member
 * spans in `out`. Returns `JsonScanError.OK` or the reason it failed.
 */
export function scanMessage(buf: Buffer, maxDepth: number, out: MessageShape): JsonScanError {
  out.reset();
  return run(buf, maxDepth, out);
}

/** StrictJsonResult is the outcome of {@link validateStrictJson}. */
export type StrictJsonResult =
  | { ok: true }
  | { ok: false; error: 'syntax' | 'depth' | 'duplicate-key'; offset: number };

/**
 * validateStrictJson checks that `input` is one JSON text with nesting at most `maxDepth` and no
 * duplicate keys in any object.
 *
 * @example
 * validateStrictJson('{"a":1,"\\u0061":2}'); // { ok: false, error: 'duplicate-key', offset: 17 }
 */
export function validateStrictJson(input: string | Buffer, maxDepth = 64): StrictJsonResult {
  const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  const shapeOut = new MessageShape();
  const code = run(buf, maxDepth, shapeOut);
  if (code === JsonScanError.OK) return { ok: true };
  const error = code === JsonScanError.DEPTH ? 'depth' : code === JsonScanError.DUPLICATE_KEY ? 'duplicate-key' : 'syntax';
  return { ok: false, error, offset: shapeOut.errorOffset };
}

// ---- reading recorded spans ----

/** spanRaw returns the span's source text (for an id: the exact JSON to echo back). */
export function spanRaw(buf: Buffer, span: Span): string {
  return buf.toString('utf8', span.start, span.end);
}

/** spanString decodes a STRING span to its value. */
export function spanString(buf: Buffer, span: Span): string {
  return span.escaped ? (JSON.parse(buf.toString('utf8', span.start, span.end)) as string) : buf.toString('utf8', span.start + 1, span.end - 1);
}

/**
 * spanIs reports whether a STRING span's value equals `quoted` (the UTF-8 bytes of the JSON
 * string, quotes included), comparing raw bytes unless the span has escapes.
 */
export function spanIs(buf: Buffer, span: Span, quoted: Buffer, plain: string): boolean {
  if (span.type !== JsonType.STRING) return false;
  if (span.escaped) return spanString(buf, span) === plain;
  const len = span.end - span.start;
  if (len !== quoted.length) return false;
  for (let i = 0; i < len; i++) if (buf[span.start + i] !== quoted[i]) return false;
  return true;
}
