import { AgentError, CertificateRejectedError, HandshakeError, RelayUnreachableError } from '../errors.js';

const IDENTITY_ALERT = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(?:BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_[A-Z_]+|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)$/;
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
]);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED', 'EADDRNOTAVAIL']);

/** dialError turns what `ws`, `tls` or `net` raised while opening a session into an {@link AgentError}. */
export function dialError(err: unknown, relay: string): AgentError {
  if (err instanceof AgentError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const msg = e?.message ?? String(err);
  if (code === 'ERR_SWITCHBOARD_CERT_REFUSED') {
    return new CertificateRejectedError(
      'rejected-by-relay',
      `${relay} refused our certificate: it closed the connection right after the TLS handshake (certificate not issued by a CA it trusts, expired, or revoked)`,
      { cause: err },
    );
  }
  if (code !== undefined && IDENTITY_ALERT.test(code)) {
    const alert = code.replace(/^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_/, '').toLowerCase().replaceAll('_', ' ');
    return new CertificateRejectedError('rejected-by-relay', `${relay} refused our certificate (TLS alert: ${alert})`, { cause: err });
  }
  if (code !== undefined && UNTRUSTED_PEER.has(code)) {
    return new CertificateRejectedError('relay-untrusted', `${relay} presented a certificate our trust bundle does not accept (${code})`, { cause: err });
  }
  if (code !== undefined && UNREACHABLE.has(code)) return new RelayUnreachableError(`cannot reach ${relay} (${code})`, { cause: err });
  if (msg.includes('handshake has timed out')) return new RelayUnreachableError(`${relay} did not answer in time`, { cause: err });
  if (code?.startsWith('ERR_SSL_')) return new HandshakeError(`TLS handshake with ${relay} failed (${code})`, { cause: err });
  return new HandshakeError(`opening a session on ${relay} failed: ${msg}`, { cause: err });
}
