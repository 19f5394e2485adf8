import {
  ConnectorError,
  HandshakeError,
  IdentityRejectedError,
  RelayUnreachableError,
  RelayUntrustedError,
} from '../errors.js';

// OpenSSL alerts a relay sends when it refuses our certificate during the handshake.
const IDENTITY_ALERT = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(?:BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_[A-Z_]+|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)$/;
// OpenSSL verification results when the relay's chain does not verify against our bundle.
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
 * tlsAlertIsIdentityRejection reports whether a Node error code is a TLS alert by which a peer
 * refuses our certificate (bad, unknown CA, expired, revoked, required, access denied).
 */
export function tlsAlertIsIdentityRejection(code: string | undefined): boolean {
  return code !== undefined && IDENTITY_ALERT.test(code);
}

/** dialError turns what `ws`, `tls` or `net` raised while dialing into a {@link ConnectorError}. */
export function dialError(err: unknown, relay: string): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const msg = e?.message ?? String(err);
  if (code === 'ERR_SWITCHBOARD_CERT_REFUSED') {
    return new IdentityRejectedError(
      `${relay} closed the connection right after the TLS handshake without accepting our certificate (not issued by a CA it trusts, expired, or revoked)`,
      { cause: err },
    );
  }
  if (tlsAlertIsIdentityRejection(code)) {
    return new IdentityRejectedError(`${relay} refused our certificate (TLS alert ${alertName(code as string)})`, { cause: err });
  }
  if (code !== undefined && UNTRUSTED_PEER.has(code)) {
    return new RelayUntrustedError(`${relay} presented a certificate our trust bundle does not accept (${code})`, { cause: err });
  }
  if (code !== undefined && UNREACHABLE.has(code)) return new RelayUnreachableError(`cannot reach ${relay} (${code})`, { cause: err });
  if (msg.includes('handshake has timed out')) return new RelayUnreachableError(`${relay} did not complete the WebSocket handshake in time`, { cause: err });
  if (code?.startsWith('ERR_SSL_')) return new HandshakeError(`TLS handshake with ${relay} failed (${code})`, { cause: err });
  return new HandshakeError(`connecting to ${relay} failed: ${msg}`, { cause: err });
}

function alertName(code: string): string {
  return code.replace(/^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_/, '').toLowerCase().replaceAll('_', ' ');
}
