import { checkReauthPayload, type ReauthPayload, type ReauthResultPayload } from './reauth.js';
import { isCredentialPart, type ResumeCredential } from './resume.js';


/** TRACEPARENT is a version-00 W3C traceparent. */
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * Frames of the connector link (`switchboard.v1`). Every frame is one binary WebSocket message:
 *
 *   byte 0      frame type (FrameType)
 *   bytes 1..4  session id, uint32 big-endian (0 for link-level frames)
 *   bytes 5..   payload: for DATA the JSON-RPC message (UTF-8, unchanged); for WINDOW a uint32
 *               big-endian credit increment in bytes; for every other type a JSON object
 *
 * See docs/protocol.md for the state machine and flow control.
 */

/** LINK_PROTOCOL_VERSION is sent in HELLO and WELCOME; peers refuse a version they do not speak. */
export const LINK_PROTOCOL_VERSION = 1;
/** LINK_SUBPROTOCOL is the WebSocket subprotocol of the connector link. */
export const LINK_SUBPROTOCOL = 'switchboard.v1';
/** AGENT_SUBPROTOCOL is the WebSocket subprotocol of an agent session. */
export const AGENT_SUBPROTOCOL = 'mcp';
/** MAX_HELLO_SERVERS bounds the servers one HELLO may offer. */
export const MAX_HELLO_SERVERS = 1024;
/** HEADER_BYTES is the size of a frame header. */
export const HEADER_BYTES = 5;
/** DEFAULT_SESSION_WINDOW_BYTES is each direction's initial flow-control credit per session. */
export const DEFAULT_SESSION_WINDOW_BYTES = 256 * 1024;

/** FrameType numbers the link frames. */
export const FrameType = Object.freeze({
  HELLO: 0x01,
  WELCOME: 0x02,
  GOAWAY: 0x03,
  /** REAUTH (connector → relay): a renewed SVID for this link, with its proof (reauth.ts). */
  REAUTH: 0x04,
  /** REAUTH_RESULT (relay → connector): accepted with the new expiry, or why not. */
  REAUTH_RESULT: 0x05,
  OPEN: 0x10,
  OPEN_OK: 0x11,
  OPEN_FAIL: 0x12,
  DATA: 0x20,
  WINDOW: 0x21,
  CLOSE: 0x30,
  /** EVENT (connector → relay): something the relay must record for a session (egress.denied); only when WELCOME.events. */
  EVENT: 0x31,
} as const);
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

const KNOWN_TYPES = new Set<number>(Object.values(FrameType));

/** HelloPayload is the connector's first frame: protocol version and the servers it offers. */
export interface HelloPayload {
  version: number;
  servers: string[];
  /** connector software version, informational. */
  agent?: string;
}

/** WelcomePayload answers HELLO: which servers the relay registered for this link, which not. */
export interface WelcomePayload {
  version: number;
  linkId: string;
  accepted: string[];
  /** rejected lists the servers refused and why (`reason` is `''` when the relay gave none). */
  rejected: { server: string; reason: string }[];
  /** window is the per-session initial credit, in bytes, both directions. */
  window: number;
  /** relay is the relay's SPIFFE ID. */
  relay: string;
  /** reauth is true when the relay accepts REAUTH on this link (a connector sends it only then). */
  reauth?: boolean;
  /** events is true when the relay accepts EVENT frames (a connector sends them only then). */
  events?: boolean;
}

/** MAX_EVENT_FIELD is the longest string an EVENT field may carry. */
export const MAX_EVENT_FIELD = 512;

/**
 * EventPayload is one thing the connector saw in a session and the relay records: today
 * `egress.denied`, a destination the contained server asked for and did not get.
 */
export interface EventPayload {
  kind: 'egress.denied';
  /** destination is the host the server named (a domain or an IP address). */
  destination: string;
  port: number;
  /** reason says which rule refused it. */
  reason: string;
}

/** OpenPayload asks the connector for a new backend session. */
export interface OpenPayload {
  server: string;
  /** agent is the calling agent's SPIFFE ID. */
  agent: string;
  /** jwtSvid, when the server opted in, is a short-lived token naming the agent, for the backend. */
  jwtSvid?: string;
  /** resumable asks the connector for a resume credential in OPEN_OK (the agent offered resumption). */
  resumable?: boolean;
  /** resume asks the connector to re-attach the backend session this credential names, instead of a new one. */
  resume?: ResumeCredential;
  /** traceparent, when the relay traces, is the W3C trace context of its session span (the connector's spans are its children). */
  traceparent?: string;
}

/** OpenOkPayload answers OPEN: the backend session is ready (a new one, or the resumed one). */
export interface OpenOkPayload {
  /** resume is the session's credential and how long the connector keeps it after a loss (when asked). */
  resume?: ResumeCredential & { graceMs: number };
  /** resumed is true when OPEN carried `resume` and the same backend session was re-attached. */
  resumed?: boolean;
}

/** ClosePayload ends a session (OPEN_FAIL and CLOSE) or a link (GOAWAY). */
export interface ClosePayload {
  code: number;
  reason: string;
}

/** Frame is a decoded link frame. */
export type Frame =
  | { type: typeof FrameType.HELLO; sessionId: 0; payload: HelloPayload }
  | { type: typeof FrameType.WELCOME; sessionId: 0; payload: WelcomePayload }
  | { type: typeof FrameType.GOAWAY; sessionId: 0; payload: ClosePayload }
  | { type: typeof FrameType.REAUTH; sessionId: 0; payload: ReauthPayload }
  | { type: typeof FrameType.REAUTH_RESULT; sessionId: 0; payload: ReauthResultPayload }
  | { type: typeof FrameType.OPEN; sessionId: number; payload: OpenPayload }
  | { type: typeof FrameType.OPEN_OK; sessionId: number; payload: OpenOkPayload }
  | { type: typeof FrameType.OPEN_FAIL; sessionId: number; payload: ClosePayload }
  | { type: typeof FrameType.DATA; sessionId: number; data: Buffer }
  | { type: typeof FrameType.WINDOW; sessionId: number; increment: number }
  | { type: typeof FrameType.CLOSE; sessionId: number; payload: ClosePayload }
  | { type: typeof FrameType.EVENT; sessionId: number; payload: EventPayload };

/** LinkProtocolError is a frame that breaks the framing rules; the link is closed with 1002. */
export class LinkProtocolError extends Error {
  readonly code = 'LINK_ERR_PROTOCOL' as const;
  constructor(message: string) {
    super(`link: ${message}`);
    this.name = 'LinkProtocolError';
  }
}

function header(type: number, sessionId: number, payloadBytes: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + payloadBytes);
  buf[0] = type;
  buf.writeUInt32BE(sessionId >>> 0, 1);
  return buf;
}

/** encodeData frames one JSON-RPC message for a session. The message bytes are copied once. */
export function encodeData(sessionId: number, message: Buffer | string): Buffer {
  const len = typeof message === 'string' ? Buffer.byteLength(message) : message.length;
  const buf = header(FrameType.DATA, sessionId, len);
  if (typeof message === 'string') buf.write(message, HEADER_BYTES, 'utf8');
  else message.copy(buf, HEADER_BYTES);
  return buf;
}

/** encodeWindow grants `increment` more bytes of credit for a session. */
export function encodeWindow(sessionId: number, increment: number): Buffer {
  if (!Number.isInteger(increment) || increment <= 0 || increment > 0xffffffff) throw new RangeError('link: window increment out of range');
  const buf = header(FrameType.WINDOW, sessionId, 4);
  buf.writeUInt32BE(increment, HEADER_BYTES);
  return buf;
}

/** encodeControl frames a JSON control payload (HELLO, WELCOME, GOAWAY, OPEN, OPEN_OK, OPEN_FAIL, CLOSE). */
export function encodeControl(type: FrameType, sessionId: number, payload: object): Buffer {
  if (type === FrameType.DATA || type === FrameType.WINDOW) throw new TypeError('link: use encodeData / encodeWindow');
  const json = JSON.stringify(payload);
  const buf = header(type, sessionId, Buffer.byteLength(json));
  buf.write(json, HEADER_BYTES, 'utf8');
  return buf;
}

/**
 * decodeFrame parses one binary WebSocket message and checks its payload against the frame's
 * payload type; throws {@link LinkProtocolError} on bad framing or a malformed payload.
 */
export function decodeFrame(buf: Buffer): Frame {
  if (buf.length < HEADER_BYTES) throw new LinkProtocolError(`frame of ${buf.length} bytes is shorter than its header`);
  const type = buf[0] as number;
  if (!KNOWN_TYPES.has(type)) throw new LinkProtocolError(`unknown frame type 0x${type.toString(16)}`);
  const sessionId = buf.readUInt32BE(1);
  const linkLevel = type === FrameType.HELLO || type === FrameType.WELCOME || type === FrameType.GOAWAY || type === FrameType.REAUTH || type === FrameType.REAUTH_RESULT;
  if (linkLevel !== (sessionId === 0)) {
    throw new LinkProtocolError(linkLevel ? 'link-level frame with a session id' : 'session frame with session id 0');
  }
  if (type === FrameType.DATA) return { type, sessionId, data: buf.subarray(HEADER_BYTES) };
  if (type === FrameType.WINDOW) {
    if (buf.length !== HEADER_BYTES + 4) throw new LinkProtocolError('WINDOW frame must carry exactly 4 bytes');
    const increment = buf.readUInt32BE(HEADER_BYTES);
    if (increment === 0) throw new LinkProtocolError('WINDOW increment must be positive');
    return { type, sessionId, increment };
  }
  let payload: unknown;
  try {
    payload = JSON.parse(buf.toString('utf8', HEADER_BYTES));
  } catch {
    throw new LinkProtocolError(`control frame 0x${type.toString(16)} does not carry valid JSON`);
  }
  if (!isObject(payload)) throw new LinkProtocolError(`control frame 0x${type.toString(16)} payload must be a JSON object`);
  return { type, sessionId, payload: checkPayload(type, payload) } as Frame;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStringList(v: unknown, max: number): v is string[] {
  return Array.isArray(v) && v.length <= max && v.every((s) => typeof s === 'string');
}

const FRAME_NAMES: Record<number, string> = Object.fromEntries(Object.entries(FrameType).map(([k, v]) => [v, k]));

/**
 * checkPayload holds each control frame to its payload type, so a receiver works with typed values
 * only: a field of the wrong type, or a required one missing, is a {@link LinkProtocolError}.
 * Unknown fields are ignored (a newer peer may add some); only the documented ones are kept.
 */
function checkPayload(type: number, p: Json): unknown {
  const bad = (field: string, rule: string): never => {
    throw new LinkProtocolError(`${FRAME_NAMES[type]}.${field} ${rule}`);
  };
  switch (type) {
    case FrameType.HELLO: {
      if (!isPositiveInteger(p.version)) bad('version', 'must be a positive integer');
      if (!isStringList(p.servers, MAX_HELLO_SERVERS)) bad('servers', `must be a list of at most ${MAX_HELLO_SERVERS} server names`);
      if (p.agent !== undefined && typeof p.agent !== 'string') bad('agent', 'must be a string');
      const hello: HelloPayload = { version: p.version as number, servers: p.servers as string[] };
      if (typeof p.agent === 'string') hello.agent = p.agent;
      return hello;
    }
    case FrameType.WELCOME: {
      if (!isPositiveInteger(p.version)) bad('version', 'must be a positive integer');
      if (typeof p.linkId !== 'string') bad('linkId', 'must be a string');
      if (typeof p.relay !== 'string') bad('relay', 'must be a string');
      if (!isStringList(p.accepted, MAX_HELLO_SERVERS)) bad('accepted', 'must be a list of server names');
      const rejected = p.rejected ?? [];
      if (!Array.isArray(rejected) || rejected.length > MAX_HELLO_SERVERS || !rejected.every((r) => isObject(r) && typeof r.server === 'string' && (r.reason === undefined || typeof r.reason === 'string'))) {
        bad('rejected', 'must be a list of { server, reason }');
      }
      if (!isPositiveInteger(p.window) || (p.window as number) > 0xffffffff) bad('window', 'must be an integer from 1 to 2^32-1');
      const welcome: WelcomePayload = {
        version: p.version as number,
        linkId: p.linkId as string,
        relay: p.relay as string,
        accepted: p.accepted as string[],
        rejected: (rejected as Json[]).map((r) => ({ server: r.server as string, reason: typeof r.reason === 'string' ? r.reason : '' })),
        window: p.window as number,
      };
      if (p.reauth !== undefined && typeof p.reauth !== 'boolean') bad('reauth', 'must be true or false');
      if (p.reauth === true) welcome.reauth = true;
      if (p.events !== undefined && typeof p.events !== 'boolean') bad('events', 'must be true or false');
      if (p.events === true) welcome.events = true;
      return welcome;
    }
    case FrameType.OPEN: {
      if (typeof p.server !== 'string') bad('server', 'must be a string');
      if (typeof p.agent !== 'string') bad('agent', 'must be a string');
      if (p.jwtSvid !== undefined && typeof p.jwtSvid !== 'string') bad('jwtSvid', 'must be a string');
      if (p.resumable !== undefined && typeof p.resumable !== 'boolean') bad('resumable', 'must be true or false');
      const open: OpenPayload = { server: p.server as string, agent: p.agent as string };
      if (typeof p.jwtSvid === 'string') open.jwtSvid = p.jwtSvid;
      if (p.resumable === true) open.resumable = true;
      if (p.traceparent !== undefined) {
        if (typeof p.traceparent !== 'string' || !TRACEPARENT.test(p.traceparent)) bad('traceparent', 'must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)');
        open.traceparent = p.traceparent as string;
      }
      if (p.resume !== undefined) {
        const r = p.resume as Json;
        if (!isObject(r) || !isCredentialPart(r.id) || !isCredentialPart(r.secret)) bad('resume', 'must be { id, secret } of 16–64 base64url characters each');
        open.resume = { id: r.id as string, secret: r.secret as string };
      }
      return open;
    }
    case FrameType.OPEN_OK: {
      const ok: OpenOkPayload = {};
      if (p.resume !== undefined) {
        const r = p.resume as Json;
        if (!isObject(r) || !isCredentialPart(r.id) || !isCredentialPart(r.secret) || typeof r.graceMs !== 'number' || !Number.isInteger(r.graceMs) || r.graceMs < 0) {
          bad('resume', 'must be { id, secret, graceMs }');
        }
        ok.resume = { id: r.id as string, secret: r.secret as string, graceMs: r.graceMs as number };
      }
      if (p.resumed !== undefined && typeof p.resumed !== 'boolean') bad('resumed', 'must be true or false');
      if (p.resumed === true) ok.resumed = true;
      return ok;
    }
    case FrameType.REAUTH:
      try {
        return checkReauthPayload(p);
      } catch (err) {
        throw new LinkProtocolError((err as Error).message);
      }
    case FrameType.REAUTH_RESULT: {
      if (typeof p.ok !== 'boolean') bad('ok', 'must be true or false');
      if (p.notAfter !== undefined && typeof p.notAfter !== 'string') bad('notAfter', 'must be a string');
      if (p.reason !== undefined && typeof p.reason !== 'string') bad('reason', 'must be a string');
      const result: ReauthResultPayload = { ok: p.ok as boolean };
      if (typeof p.notAfter === 'string') result.notAfter = p.notAfter;
      if (typeof p.reason === 'string') result.reason = p.reason;
      return result;
    }
    case FrameType.EVENT: {
      if (p.kind !== 'egress.denied') bad('kind', 'must be "egress.denied"');
      if (typeof p.destination !== 'string' || p.destination.length === 0 || p.destination.length > MAX_EVENT_FIELD) bad('destination', `must be a string of 1–${MAX_EVENT_FIELD} characters`);
      if (typeof p.port !== 'number' || !Number.isInteger(p.port) || p.port < 0 || p.port > 65535) bad('port', 'must be an integer from 0 to 65535');
      if (typeof p.reason !== 'string' || p.reason.length > MAX_EVENT_FIELD) bad('reason', `must be a string of at most ${MAX_EVENT_FIELD} characters`);
      const event: EventPayload = { kind: 'egress.denied', destination: p.destination as string, port: p.port as number, reason: p.reason as string };
      return event;
    }
    default: {
      // GOAWAY, OPEN_FAIL, CLOSE
      if (typeof p.code !== 'number' || !Number.isInteger(p.code) || p.code < 0 || p.code > 0xffff) bad('code', 'must be an integer from 0 to 65535');
      if (p.reason !== undefined && typeof p.reason !== 'string') bad('reason', 'must be a string');
      const close: ClosePayload = { code: p.code as number, reason: typeof p.reason === 'string' ? p.reason : '' };
      return close;
    }
  }
}

function isPositiveInteger(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}
