import { classifyDialFailure } from '@switchboard/protocol';
import {
  ConnectorError,
  HandshakeError,
  IdentityRejectedError,
  RelayUnreachableError,
  RelayUntrustedError,
} from '../errors.js';

/** dialError turns what `ws`, `tls` or `net` raised while dialing into a {@link ConnectorError}. */
export function dialError(err: unknown, relay: string): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const f = classifyDialFailure(err);
  const cause = { cause: err };
  switch (f.kind) {
    case 'refused-after-handshake':
      return new IdentityRejectedError(
        `${relay} closed the connection right after the TLS handshake without accepting our certificate (not issued by a CA it trusts, expired, or revoked)`,
        cause,
      );
    case 'identity-alert':
      return new IdentityRejectedError(`${relay} refused our certificate (TLS alert ${f.alert})`, cause);
    case 'relay-untrusted':
      return new RelayUntrustedError(`${relay} presented a certificate our trust bundle does not accept (${f.code})`, cause);
    case 'unreachable':
      return new RelayUnreachableError(`cannot reach ${relay} (${f.code})`, cause);
    case 'timeout':
      return new RelayUnreachableError(`${relay} did not complete the WebSocket handshake in time`, cause);
    case 'tls':
      return new HandshakeError(`TLS handshake with ${relay} failed (${f.code})`, cause);
    default:
      return new HandshakeError(`connecting to ${relay} failed: ${f.message}`, cause);
  }
}
