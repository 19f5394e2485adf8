import { JsonType, spanIs, spanRaw, spanString, type MessageShape, type Span } from './strict-json.js';

/** MessageKind classifies a scanned JSON-RPC 2.0 message. */
export const MessageKind = Object.freeze({ INVALID: 0, REQUEST: 1, NOTIFICATION: 2, RESPONSE: 3 } as const);
export type MessageKind = (typeof MessageKind)[keyof typeof MessageKind];

const V2 = Buffer.from('"2.0"');

/**
 * classify applies the JSON-RPC 2.0 message rules to a scanned object: `jsonrpc` is exactly
 * "2.0"; a request or notification has a string `method` (and structured `params`, if any); a
 * request's id is a string or a finite number; a response has an id and exactly one of `result`
 * or an object `error`.
 */
export function classify(buf: Buffer, s: MessageShape): MessageKind {
  if (!spanIs(buf, s.jsonrpc, V2, '2.0')) return MessageKind.INVALID;
  if (s.method.present) {
    if (s.method.type !== JsonType.STRING) return MessageKind.INVALID;
    if (s.result.present || s.error.present) return MessageKind.INVALID;
    if (s.params.present && s.params.type !== JsonType.OBJECT && s.params.type !== JsonType.ARRAY) return MessageKind.INVALID;
    if (!s.id.present) return MessageKind.NOTIFICATION;
    // MCP: a request id is a string or a number, never null.
    if (s.id.type !== JsonType.STRING && s.id.type !== JsonType.NUMBER) return MessageKind.INVALID;
    return MessageKind.REQUEST;
  }
  if (!s.id.present) return MessageKind.INVALID;
  if (s.id.type !== JsonType.STRING && s.id.type !== JsonType.NUMBER && s.id.type !== JsonType.NULL) return MessageKind.INVALID;
  if (s.result.present === s.error.present) return MessageKind.INVALID;
  if (s.error.present && s.error.type !== JsonType.OBJECT) return MessageKind.INVALID;
  return MessageKind.RESPONSE;
}

/** RequestKey identifies a request id by value: `1`, `1.0` and `1e0` are one id; `"1"` another. */
export type RequestKey = string | number;

/** requestKey returns the id's value, or `undefined` for null and non-finite numbers. */
export function requestKey(buf: Buffer, id: Span): RequestKey | undefined {
  if (id.type === JsonType.STRING) return spanString(buf, id);
  if (id.type === JsonType.NUMBER) {
    const n = Number(spanRaw(buf, id));
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** keyJson writes a request key back as JSON, to echo it in a reply. */
export function keyJson(key: RequestKey): string {
  return JSON.stringify(key);
}

/** Method names the relay decides on, as the quoted UTF-8 bytes a raw span is compared with. */
export const Methods = Object.freeze({
  toolsCall: { quoted: Buffer.from('"tools/call"'), plain: 'tools/call' },
  toolsList: { quoted: Buffer.from('"tools/list"'), plain: 'tools/list' },
  ping: { quoted: Buffer.from('"ping"'), plain: 'ping' },
  sampling: { quoted: Buffer.from('"sampling/createMessage"'), plain: 'sampling/createMessage' },
  elicitation: { quoted: Buffer.from('"elicitation/create"'), plain: 'elicitation/create' },
  roots: { quoted: Buffer.from('"roots/list"'), plain: 'roots/list' },
  cancelled: { quoted: Buffer.from('"notifications/cancelled"'), plain: 'notifications/cancelled' },
});

/**
 * cancelledRequestKey reads `params.requestId` of a `notifications/cancelled` (rare and small, so
 * it is parsed whole), or `undefined` when absent or not a string or number.
 */
export function cancelledRequestKey(buf: Buffer): RequestKey | undefined {
  const msg = JSON.parse(buf.toString('utf8')) as { params?: { requestId?: unknown } };
  const id = msg.params?.requestId;
  return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? id : undefined;
}

const NOTIFICATION_PREFIX = Buffer.from('"notifications/');

/**
 * isNotificationMethod reports whether the method is in the `notifications/` namespace. Every MCP
 * notification is; anything else sent without an id (a `tools/call` notification, say) is refused
 * instead of being passed to a peer that might act on it.
 */
export function isNotificationMethod(buf: Buffer, s: MessageShape): boolean {
  const m = s.method;
  if (m.escaped) return spanString(buf, m).startsWith('notifications/');
  if (m.end - m.start <= NOTIFICATION_PREFIX.length) return false;
  for (let i = 0; i < NOTIFICATION_PREFIX.length; i++) if (buf[m.start + i] !== NOTIFICATION_PREFIX[i]) return false;
  return true;
}

/** methodIs compares the message's method with one of {@link Methods}. */
export function methodIs(buf: Buffer, s: MessageShape, m: { quoted: Buffer; plain: string }): boolean {
  return spanIs(buf, s.method, m.quoted, m.plain);
}
