import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ResumeCredential } from '@switchboard/protocol';
import type { Logger } from '@switchboard/common';
import type { Session } from './session.js';

/** ResumeCounters are the resumption figures in the connector's metrics. */
export interface ResumeCounters {
  /** sessionsDetached counts sessions kept after their link was lost, waiting to be resumed. */
  sessionsDetached: number;
  /** sessionsResumed counts sessions re-attached through a new link. */
  sessionsResumed: number;
  /** resumesRefused counts resume attempts refused (unknown or expired id, wrong secret, another agent or server). */
  resumesRefused: number;
  /** resumeExpiries counts detached sessions closed because no resume came within the grace period. */
  resumeExpiries: number;
}

interface Entry {
  readonly session: Session;
  readonly secretDigest: Buffer;
  timer: NodeJS.Timeout | undefined;
}

/** ResumeRefusal says why a resume was refused (logged; the relay is told only that it was refused). */
export type ResumeRefusal = 'unknown' | 'identity' | 'server' | 'secret';

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/**
 * ResumeTable holds the connector's resumable sessions, attached to a link or not, by credential
 * id. A session gets a credential when its agent asked for one; when its link is lost it is
 * detached (its backend keeps running, its output waits in the session's bounded buffer) for
 * `graceMs`; a resume that presents the credential's secret, for the same agent and server,
 * takes it back — through any relay, even one whose link we have not seen fail yet. Secrets are
 * kept only as SHA-256 digests and compared in constant time.
 */
export class ResumeTable {
  readonly graceMs: number;
  private readonly entries = new Map<string, Entry>();
  private readonly counters: ResumeCounters;
  private readonly logger: Logger;

  constructor(graceMs: number, counters: ResumeCounters, logger: Logger) {
    this.graceMs = graceMs;
    this.counters = counters;
    this.logger = logger;
  }

  /** enabled is false when resumption is off (`resume.graceMs: 0`). */
  get enabled(): boolean {
    return this.graceMs > 0;
  }

  /** issue mints a credential for `session` and keeps the session under it. */
  issue(session: Session): ResumeCredential {
    const credential = { id: randomBytes(16).toString('base64url'), secret: randomBytes(32).toString('base64url') };
    this.entries.set(credential.id, { session, secretDigest: digest(credential.secret), timer: undefined });
    session.resumeId = credential.id;
    return credential;
  }

  /** hold keeps a session whose link is gone for the grace period; then its backend is closed. */
  hold(session: Session): void {
    const e = session.resumeId === undefined ? undefined : this.entries.get(session.resumeId);
    if (e === undefined || e.session !== session) return;
    this.counters.sessionsDetached++;
    clearTimeout(e.timer);
    e.timer = setTimeout(() => {
      e.timer = undefined;
      if (this.entries.get(session.resumeId as string) !== e) return;
      this.entries.delete(session.resumeId as string);
      this.counters.resumeExpiries++;
      session.logger.info({ graceMs: this.graceMs }, 'no resume within the grace period; closing the backend session');
      void session.release();
    }, this.graceMs);
    e.timer.unref();
  }

  /**
   * take returns the session `credential` names when `agent` and `server` are the ones it was
   * opened for and the secret matches; the session stays in the table (it may be resumed again).
   * Otherwise counts and logs the refusal and returns why.
   */
  take(credential: ResumeCredential, agent: string, server: string): Session | ResumeRefusal {
    const e = this.entries.get(credential.id);
    const refused = (why: ResumeRefusal): ResumeRefusal => {
      this.counters.resumesRefused++;
      this.logger.warn({ reason: why, server, peer: agent }, 'resume refused');
      return why;
    };
    if (e === undefined || e.session.state === 'closed') return refused('unknown');
    const given = digest(credential.secret);
    if (!timingSafeEqual(given, e.secretDigest)) return refused('secret');
    if (e.session.agent !== agent) return refused('identity');
    if (e.session.server !== server) return refused('server');
    clearTimeout(e.timer);
    e.timer = undefined;
    this.counters.sessionsResumed++;
    return e.session;
  }

  /** forget drops a session that has ended. */
  forget(session: Session): void {
    if (session.resumeId === undefined) return;
    const e = this.entries.get(session.resumeId);
    if (e?.session !== session) return;
    clearTimeout(e.timer);
    this.entries.delete(session.resumeId);
  }

  /** closeAll ends every detached session (connector shutdown). */
  async closeAll(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const e of this.entries.values()) {
      clearTimeout(e.timer);
      if (e.session.state === 'detached') closing.push(e.session.release());
    }
    this.entries.clear();
    await Promise.all(closing);
  }
}
