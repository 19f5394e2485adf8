import type { TLSSocket } from 'node:tls';
import type { ReauthPayload, ReauthResultPayload } from '@switchboard/protocol';
import type { AuditSink } from '../audit/sink.js';
import type { RelayMetrics } from '../metrics.js';
import type { PolicyStore } from '../policy/store.js';
import type { PeerAuthenticator, PeerIdentity } from './peer-auth.js';

/** ReauthContext is what judging a REAUTH needs from the relay. */
export interface ReauthContext {
  readonly peerAuth: Pick<PeerAuthenticator, 'reauthenticate'>;
  readonly policy: PolicyStore;
  readonly audit: AuditSink;
  readonly metrics: RelayMetrics;
}

/**
 * judgeReauth decides a REAUTH presented on a live link or session (`on`: `link:<id>` or
 * `session:<id>`): the proof and SVID rules (PeerAuthenticator.reauthenticate), then the policy
 * (not revoked by ID or by the new serial). Audits and counts the outcome; returns the answer to
 * send and, when accepted, the connection's new identity.
 */
export function judgeReauth(ctx: ReauthContext, socket: TLSSocket, payload: ReauthPayload, before: PeerIdentity, on: string): { answer: ReauthResultPayload; next?: PeerIdentity } {
  let next: PeerIdentity;
  try {
    next = ctx.peerAuth.reauthenticate(socket, payload, before);
    if (ctx.policy.identity(next).revoked !== undefined) throw new Error('this identity has been revoked');
  } catch (err) {
    const reason = (err as Error).message.slice(0, 300);
    ctx.metrics.reauths.refused++;
    ctx.audit.write({ type: 'identity.reauth', peer: before.id.toString(), on, certSerial: before.certSerial, accepted: false, newCertSerial: null, notAfter: null, reason });
    return { answer: { ok: false, reason } };
  }
  const notAfter = next.expiresAt.toISOString();
  ctx.metrics.reauths.accepted++;
  ctx.audit.write({ type: 'identity.reauth', peer: next.id.toString(), on, certSerial: before.certSerial, accepted: true, newCertSerial: next.certSerial, notAfter, reason: 'renewed certificate' });
  return { answer: { ok: true, notAfter }, next };
}
