import { RpcErrorCode } from '@switchboard/protocol';

/**
 * JSON-RPC messages the relay writes itself. Each is built as text once per message (or once per
 * process for the ones without an id); ids are echoed as JSON.
 */

function errorWithNullId(code: number, message: string, reason?: string): Buffer {
  return Buffer.from(
    JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message, ...(reason ? { data: { reason } } : {}) } }),
    'utf8',
  );
}

/** PARSE_ERROR answers a frame that is not JSON: -32700, id null. */
export const PARSE_ERROR = errorWithNullId(RpcErrorCode.PARSE_ERROR, 'Parse error');
/** BATCH_REFUSED answers a JSON array: -32600, id null, nothing forwarded. */
export const BATCH_REFUSED = errorWithNullId(RpcErrorCode.INVALID_REQUEST, 'Invalid Request', 'batches are not supported');
/** DUPLICATE_KEY answers an object with a repeated key: -32600, id null. */
export const DUPLICATE_KEY = errorWithNullId(RpcErrorCode.INVALID_REQUEST, 'Invalid Request', 'duplicate key');
/** TOO_DEEP answers nesting deeper than limits.maxDepth: -32600, id null. */
export const TOO_DEEP = errorWithNullId(RpcErrorCode.INVALID_REQUEST, 'Invalid Request', 'nesting too deep');
/** NOT_JSON_RPC answers an object that is not a JSON-RPC 2.0 message: -32600, id null. */
export const NOT_JSON_RPC = errorWithNullId(RpcErrorCode.INVALID_REQUEST, 'Invalid Request', 'not a JSON-RPC 2.0 message');
/** ID_IN_FLIGHT answers a request whose id is already waiting for its response: -32600, id null. */
export const ID_IN_FLIGHT = errorWithNullId(RpcErrorCode.INVALID_REQUEST, 'Invalid Request', 'request id already in flight');

function errorReply(idJson: string, code: number, message: string, data?: object): string {
  return `{"jsonrpc":"2.0","id":${idJson},"error":${JSON.stringify({ code, message, ...(data ? { data } : {}) })}}`;
}

/** backendUnavailableReply answers a request still outstanding when the backend session ended. */
export function backendUnavailableReply(idJson: string): string {
  return errorReply(idJson, RpcErrorCode.BACKEND_UNAVAILABLE, 'Backend session ended before answering');
}

/** auditUnavailableReply answers a `tools/call` while the audit trail cannot record (fail closed). */
export function auditUnavailableReply(idJson: string): string {
  return errorReply(idJson, RpcErrorCode.AUDIT_UNAVAILABLE, 'Audit trail unavailable; request not forwarded');
}

/** tooManyInFlightReply answers a request beyond the per-session in-flight bound. */
export function tooManyInFlightReply(idJson: string, limit: number): string {
  return errorReply(idJson, RpcErrorCode.RATE_LIMITED, `Too many requests in flight (limit ${limit})`, { retryAfterMs: 1000 });
}

/** serverRequestDeniedReply answers (to the server) a sampling/elicitation/roots request policy refuses. */
export function serverRequestDeniedReply(idJson: string, method: string): string {
  return errorReply(idJson, RpcErrorCode.SERVER_REQUEST_DENIED, `${method} is not allowed for this session by policy`);
}

/** methodNotFoundReply answers (to the server) a server→agent request the relay does not pass. */
export function methodNotFoundReply(idJson: string): string {
  return errorReply(idJson, RpcErrorCode.METHOD_NOT_FOUND, 'Method not found');
}
