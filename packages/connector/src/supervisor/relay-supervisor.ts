import type { Tracing } from '@switchboard/common/tracing';
import type { BackendTimings } from '../link/session.js';
import type { BackendFactory } from '../backend/backend.js';
import type { ServerConfig } from '../config.js';
import type { ConnectorError } from '../errors.js';
import type { IdentitySource } from '../internal/identity-source.js';
import { Link, type LinkCounters, type LinkTiming } from '../link/link.js';
import type { LinkStatus } from '../link/link-status.js';
import type { ResumeTable } from '../link/resume-table.js';
import type { Logger } from '@switchboard/common';
import { Backoff, type BackoffOptions } from './backoff.js';
import { classify } from './classify.js';


/** SupervisorContext is what a relay supervisor shares with the connector. */
export interface SupervisorContext {
  identity: IdentitySource;
  servers: Readonly<Record<string, ServerConfig>>;
  createBackend: BackendFactory;
  logger: Logger;
  timing: LinkTiming;
  backoff: BackoffOptions;
  maxSessions: number;
  outputBufferBytes: number;
  counters: LinkCounters & { reconnects: number };
  timings?: BackendTimings;
  tracing?: Tracing;
  resumes: ResumeTable;
  now: () => number;
  onReady(): void;
  onFatal(err: ConnectorError): void;
}

/**
 * RelaySupervisor keeps one relay connected: it dials a {@link Link}, waits for it to end, asks
 * {@link classify} whether to go on, and redials after a full-jitter backoff. A GOAWAY from the
 * relay lets the old link drain while a new one is dialed at once.
 */
export class RelaySupervisor {
  readonly relay: string;
  /** established is set once this relay accepted at least one server. */
  established = false;
  current: Link | undefined;
  readonly draining = new Set<Link>();
  readonly loop: Promise<void>;
  private readonly ctx: SupervisorContext;
  private readonly logger: Logger;
  private readonly backoff: Backoff;
  private readonly abort = new AbortController();
  private stopped = false;
  private waiting = false;
  private reconnects = 0;
  private lastError: string | undefined;

  constructor(relay: string, ctx: SupervisorContext) {
    this.relay = relay;
    this.ctx = ctx;
    this.logger = ctx.logger.child({ relay });
    this.backoff = new Backoff({ now: ctx.now, ...ctx.backoff });
    this.loop = this.run();
  }

  /** links lists this relay's live links: the current one and those draining. */
  links(): Link[] {
    return this.current ? [this.current, ...this.draining] : [...this.draining];
  }

  /** stop ends the loop: no more dials; a pending backoff wait returns at once. Links are left to the caller. */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  /** status is this relay's {@link LinkStatus}. */
  status(): LinkStatus {
    const link = this.current;
    const w = link?.welcome;
    let sessions = 0;
    for (const l of this.links()) sessions += l.sessionCount;
    const state: LinkStatus['state'] = this.stopped ? 'stopped' : this.waiting || !link ? 'backoff' : link.state === 'closed' ? 'backoff' : link.state;
    return {
      relay: this.relay,
      state,
      linkId: w?.linkId,
      relayId: w?.relay,
      accepted: link?.acceptedServers ?? [],
      rejected: w?.rejected ?? [],
      sessions,
      reconnects: this.reconnects,
      lastError: this.lastError,
      upSince: link?.welcomedAt !== undefined ? new Date(link.welcomedAt) : undefined,
    };
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let link: Link;
      try {
        const tls = await this.ctx.identity.current();
        if (this.stopped) return;
        let wake!: () => void;
        const goaway = new Promise<void>((resolve) => {
          wake = resolve;
        });
        link = new Link({
          relay: this.relay,
          tls,
          servers: this.ctx.servers,
          createBackend: this.ctx.createBackend,
          logger: this.logger,
          timing: this.ctx.timing,
          maxSessions: this.ctx.maxSessions,
          outputBufferBytes: this.ctx.outputBufferBytes,
          counters: this.ctx.counters,
          ...(this.ctx.timings ? { timings: this.ctx.timings } : {}),
          ...(this.ctx.tracing ? { tracing: this.ctx.tracing } : {}),
          resumes: this.ctx.resumes,
          now: this.ctx.now,
          onWelcome: () => {
            this.established = true;
            this.lastError = undefined;
            this.backoff.linkUp();
            this.ctx.onReady();
          },
          onGoaway: wake,
        });
        this.current = link;
        const outcome = await Promise.race([link.done, goaway.then(() => 'goaway' as const)]);
        if (outcome === 'goaway') {
          // The relay drains this link; dial a replacement now so new sessions have somewhere to go.
          this.current = undefined;
          this.draining.add(link);
          void link.done.then(() => this.draining.delete(link));
          this.backoff.linkDown();
          continue;
        }
        this.backoff.linkDown();
        if (this.stopped) return;
        if (!this.decide(outcome.error)) return;
      } catch (err) {
        // Identity files unreadable or expired before dialing.
        if (this.stopped) return;
        if (!this.decide(err as ConnectorError)) return;
      }
      this.reconnects++;
      this.ctx.counters.reconnects++;
      this.waiting = true;
      const ms = await this.backoff.wait(this.abort.signal);
      this.waiting = false;
      this.logger.debug({ delayMs: ms }, 'redialing');
    }
  }

  /** decide applies {@link classify}; returns false when the connector must stop. */
  private decide(err: ConnectorError | undefined): boolean {
    const d = classify(err, { established: this.established });
    this.lastError = err?.message;
    if (d.action === 'exit') {
      this.logger.error({ err: err?.message, code: err?.code }, 'giving up on relay');
      this.ctx.onFatal(err as ConnectorError);
      return false;
    }
    this.logger.warn({ reason: d.reason, code: err?.code, attempt: this.backoff.attempts + 1 }, 'link down; reconnecting');
    return true;
  }
}
