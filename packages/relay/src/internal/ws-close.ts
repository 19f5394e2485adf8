/**
 * The close code `ws` sent when it closed a connection itself for a protocol error it detected
 * while reading (a frame or message over maxPayload, invalid UTF-8, bad framing). It stops
 * reading the socket before the peer's answering close frame arrives, so its 'close' event then
 * reports 1006 with no reason: the code the peer was actually sent is the error's, kept here.
 */
const CODES: Readonly<Record<string, number>> = Object.freeze({
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 1009,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 1009,
  WS_ERR_INVALID_UTF8: 1007,
  WS_ERR_TOO_MANY_BUFFERED_PARTS: 1008,
});

/** ProtocolClose is the close a `ws` protocol error caused: the code sent to the peer and why. */
export interface ProtocolClose {
  readonly code: number;
  readonly reason: string;
}

/** protocolCloseOf maps a `ws` error (its `WS_ERR_…` code) to the close it sent; other errors are not protocol closes. */
export function protocolCloseOf(err: Error & { code?: unknown }): ProtocolClose | undefined {
  if (typeof err.code !== 'string' || !err.code.startsWith('WS_ERR_')) return undefined;
  return { code: CODES[err.code] ?? 1002, reason: err.message };
}

/** closeAsSent is the close to record: the protocol error's when `ws` reported 1006 after one. */
export function closeAsSent(code: number, reason: string, protocolClose: ProtocolClose | undefined): ProtocolClose {
  return code === 1006 && protocolClose !== undefined ? protocolClose : { code, reason };
}
