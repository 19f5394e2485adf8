import { ConnectorError, type ConnectorErrorCode } from '../errors.js';
import { dialError } from '../link/dial-errors.js';

/** Recovery is what the supervisor does after a link ended with an error: redial, or end the connector. */
export interface Recovery {
  readonly action: 'reconnect' | 'exit';
  /** reason says why, for the log line. */
  readonly reason: string;
}

/** ClassifyContext tells {@link classify} whether this relay has ever accepted us. */
export interface ClassifyContext {
  /** established is true once a link to this relay got a WELCOME that accepted a server. */
  readonly established: boolean;
}

// Conditions an operator must fix: at first start they end the process with a clear message;
// once the relay has accepted us they are taken as transient (a relay being redeployed, a policy
// being edited, an identity being renewed on disk) and retried with backoff.
const FATAL_AT_FIRST_START: ReadonlySet<ConnectorErrorCode> = new Set([
  'CONNECTOR_ERR_IDENTITY_INVALID',
  'CONNECTOR_ERR_IDENTITY_EXPIRED',
  'CONNECTOR_ERR_IDENTITY_REJECTED',
  'CONNECTOR_ERR_RELAY_UNTRUSTED',
  'CONNECTOR_ERR_NO_SERVERS_ACCEPTED',
  'CONNECTOR_ERR_PROTOCOL_VERSION',
]);
const ALWAYS_FATAL: ReadonlySet<ConnectorErrorCode> = new Set(['CONNECTOR_ERR_CONFIG_INVALID', 'CONNECTOR_ERR_CONFIG_UNREADABLE']);

/**
 * classify decides reconnect vs exit for the error a link ended with. The relay refusing our
 * identity (TLS alert about our certificate, HTTP 403, close 4401/4403), a relay we do not trust,
 * an expired own certificate, a WELCOME accepting nothing, or an unknown protocol version end the
 * connector at first start; after the relay has accepted us once, every failure is retried.
 * Config errors always end it; network failures, lost links and protocol hiccups never do.
 *
 * @example
 * const d = classify(err, { established: false });
 * if (d.action === 'exit') fail(err);
 */
export function classify(err: unknown, context: ClassifyContext): Recovery {
  if (err === undefined || err === null) return { action: 'reconnect', reason: 'link closed' };
  const e = err instanceof ConnectorError ? err : dialError(err, 'relay');
  if (ALWAYS_FATAL.has(e.code)) return { action: 'exit', reason: e.message };
  if (FATAL_AT_FIRST_START.has(e.code)) {
    return context.established
      ? { action: 'reconnect', reason: `${e.message} (retrying: the relay accepted this connector before)` }
      : { action: 'exit', reason: e.message };
  }
  return { action: 'reconnect', reason: e.message };
}
