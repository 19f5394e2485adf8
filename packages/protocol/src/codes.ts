/**
 * Wire codes: WebSocket close codes and JSON-RPC error codes that peers see. Listed with their
 * meaning in docs/errors.md; local error classes carry their own string codes.
 */

/** CloseCode lists the WebSocket close codes Switchboard sends. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  /** the peer's identity (SPIFFE ID or certificate serial) was revoked during the session. */
  IDENTITY_REVOKED: 4401,
  /** the certificate the peer authenticated with expired during the session, and was not renewed in place. */
  IDENTITY_EXPIRED: 4402,
  /** the agent may no longer use this server (policy changed). */
  FORBIDDEN: 4403,
  /** the session was resumed through another connection: this one is over (docs/protocol.md). */
  SESSION_MOVED: 4409,
  /** resumption was refused: no such session (unknown, expired, another identity's, wrong secret). */
  RESUME_REFUSED: 4410,
  /** the backend MCP server failed to start or exited. */
  BACKEND_FAILED: 4502,
  /** no connector serves this server (any more). */
  NO_CONNECTOR: 4503,
  /** the connector did not open the backend session in time. */
  OPEN_TIMEOUT: 4504,
  /** a session's bounded buffer overflowed: its reader is not keeping up. */
  SESSION_OVERFLOW: 4508,
  /** the connector link carrying this session was lost. */
  LINK_LOST: 4509,
} as const);
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** RpcErrorCode lists the JSON-RPC error codes the relay answers with itself. */
export const RpcErrorCode = Object.freeze({
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  /** a tool the identity may not use, or one that does not exist: deliberately the same answer. */
  UNKNOWN_TOOL: -32602,
  /** a server→agent request (sampling, elicitation, roots) that policy does not allow. */
  SERVER_REQUEST_DENIED: -32001,
  /** the call was refused by policy (resources, prompts, argument constraints). */
  POLICY_DENIED: -32003,
  /** a rate or concurrency limit was hit; `data.retryAfterMs` says when to retry. */
  RATE_LIMITED: -32029,
  /** the audit trail could not record the request; nothing was forwarded (fail closed). */
  AUDIT_UNAVAILABLE: -32050,
  /** the backend session ended before answering. */
  BACKEND_UNAVAILABLE: -32051,
} as const);

/** MAX_CLOSE_REASON_BYTES is the longest reason a close frame carries (RFC 6455 allows 123 bytes). */
export const MAX_CLOSE_REASON_BYTES = 120;

/**
 * sendableCloseCode returns `code` when a WebSocket close frame may carry it (RFC 6455 §7.4: 1000–1003,
 * 1007–1014, 3000–4999), else `fallback`. A peer's code is passed on only through this: `ws` throws
 * on a code it may not send, and 1005/1006/1015 must never be sent.
 */
export function sendableCloseCode(code: unknown, fallback: number): number {
  if (typeof code !== 'number' || !Number.isInteger(code)) return fallback;
  if (code >= 1000 && code <= 1003) return code;
  if (code >= 1007 && code <= 1014) return code;
  if (code >= 3000 && code <= 4999) return code;
  return fallback;
}

/**
 * closeReason keeps a reason within {@link MAX_CLOSE_REASON_BYTES} bytes of UTF-8, cutting on a
 * character boundary and marking the cut with `...`; anything but a string becomes `''`.
 */
export function closeReason(reason: unknown): string {
  const s = typeof reason === 'string' ? reason : '';
  if (Buffer.byteLength(s) <= MAX_CLOSE_REASON_BYTES) return s;
  const chars = Array.from(s);
  let out = '';
  let bytes = 0;
  for (const ch of chars) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > MAX_CLOSE_REASON_BYTES - 3) break;
    out += ch;
    bytes += n;
  }
  return `${out}...`;
}
