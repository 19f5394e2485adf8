import { classifyDialFailure } from '@switchboard/protocol';
import { AgentError, CertificateRejectedError, HandshakeError, RelayUnreachableError } from '../errors.js';

/** dialError turns what `ws`, `tls` or `net` raised while opening a session into an {@link AgentError}. */
export function dialError(err: unknown, relay: string): AgentError {
  if (err instanceof AgentError) return err;
  const f = classifyDialFailure(err);
  const cause = { cause: err };
  switch (f.kind) {
    case 'refused-after-handshake':
      return new CertificateRejectedError(
        'rejected-by-relay',
        `${relay} refused our certificate: it closed the connection right after the TLS handshake (certificate not issued by a CA it trusts, expired, or revoked)`,
        cause,
      );
    case 'identity-alert':
      return new CertificateRejectedError('rejected-by-relay', `${relay} refused our certificate (TLS alert: ${f.alert})`, cause);
    case 'relay-untrusted':
      return new CertificateRejectedError('relay-untrusted', `${relay} presented a certificate our trust bundle does not accept (${f.code})`, cause);
    case 'unreachable':
      return new RelayUnreachableError(`cannot reach ${relay} (${f.code})`, cause);
    case 'timeout':
      return new RelayUnreachableError(`${relay} did not answer in time`, cause);
    case 'tls':
      return new HandshakeError(`TLS handshake with ${relay} failed (${f.code})`, cause);
    default:
      return new HandshakeError(`opening a session on ${relay} failed: ${f.message}`, cause);
  }
}
