/**
 * Classifying why dialing the relay failed, shared by the connector and the agent SDK; each maps
 * the kinds to its own typed errors and wording.
 */

// OpenSSL alerts a relay sends when it refuses our certificate during the handshake.
const IDENTITY_ALERT = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(?:BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_[A-Z_]+|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)$/;
// OpenSSL verification results (and Node's name check) when the relay's chain does not verify against our bundle.
const UNTRUSTED_PEER = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED', 'EADDRNOTAVAIL']);

/**
 * DialFailure says why a dial failed:
 * - `refused-after-handshake` — the relay closed the connection right after TLS without accepting
 *   our certificate (RelayTls reports it as `ERR_SWITCHBOARD_CERT_REFUSED`);
 * - `identity-alert` — a TLS alert refusing our certificate (`alert` is its name, e.g. "unknown ca");
 * - `relay-untrusted` — the relay's certificate does not verify against our bundle;
 * - `unreachable` — no connection (`code` says why);
 * - `timeout` — the WebSocket handshake did not complete in time;
 * - `tls` — another TLS failure; `other` — anything else (`message`).
 */
export type DialFailure =
  | { kind: 'refused-after-handshake' }
  | { kind: 'identity-alert'; code: string; alert: string }
  | { kind: 'relay-untrusted'; code: string }
  | { kind: 'unreachable'; code: string }
  | { kind: 'timeout' }
  | { kind: 'tls'; code: string }
  | { kind: 'other'; message: string };

/** classifyDialFailure tells what `ws`, `tls` or `net` raised while dialing the relay. */
export function classifyDialFailure(err: unknown): DialFailure {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = e?.message ?? String(err);
  if (code === 'ERR_SWITCHBOARD_CERT_REFUSED') return { kind: 'refused-after-handshake' };
  if (code !== undefined && IDENTITY_ALERT.test(code)) {
    return { kind: 'identity-alert', code, alert: code.replace(/^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_/, '').toLowerCase().replaceAll('_', ' ') };
  }
  if (code !== undefined && UNTRUSTED_PEER.has(code)) return { kind: 'relay-untrusted', code };
  if (code !== undefined && UNREACHABLE.has(code)) return { kind: 'unreachable', code };
  if (message.includes('handshake has timed out')) return { kind: 'timeout' };
  if (code?.startsWith('ERR_SSL_')) return { kind: 'tls', code };
  return { kind: 'other', message };
}
