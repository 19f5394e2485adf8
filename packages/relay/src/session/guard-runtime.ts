import { CloseCode } from '@switchboard/protocol';
import { combineProfiles, RateLimiter, type RedactionProfile } from '@switchboard/guard';
import type { JwtSvidSigner, SpiffeId } from '@switchboard/pki';
import type { Logger } from 'pino';
import type { AuditSink } from '../audit/sink.js';
import { PolicyError } from '../errors.js';
import type { RelayMetrics } from '../metrics.js';
import { normalizeSerial, type PolicySnapshot } from '../policy/compile.js';
import { revocationDecision } from '../policy/decide.js';
import { Inventory } from './inventory.js';
import type { PolicyStore } from '../policy/store.js';
import type { PinRuntime } from './pin-runtime.js';
import { LIST_CHANGED } from './policy-replies.js';
import type { PeerIdentity } from './agent-session.js';
import type { SessionGuard } from './guards.js';

/** MAX_BACKEND_JWT_TTL_SECONDS bounds the lifetime of JWT-SVIDs the relay sends to backends (5 min). */
export const MAX_BACKEND_JWT_TTL_SECONDS = 300;

/** RevocableLink is what the runtime needs of a connector link to close it on revocation. */
export interface RevocableLink {
  readonly peer: PeerIdentity;
  shutdown(code: number, reason: string): void;
}

/** GuardRuntimeInit configures a {@link GuardRuntime}. */
export interface GuardRuntimeInit {
  policy: PolicyStore;
  pins: PinRuntime;
  audit: AuditSink;
  metrics: RelayMetrics;
  logger: Logger;
  /** signer mints JWT-SVIDs for servers with `identityToBackend`. */
  signer?: JwtSvidSigner;
  /** jwtTtlSeconds is the lifetime of those tokens (default and maximum 300). */
  jwtTtlSeconds?: number;
  limiter?: RateLimiter;
}

/**
 * GuardRuntime is the relay-wide state of policy enforcement: the rate limiter (per agent and
 * rule, across sessions), the pin store, the tool inventory behind `GET /v1/servers`, the
 * JWT-SVID signer, the redaction profiles in use, and the set of live sessions — so a policy swap,
 * a revocation or a pin approval reaches every session at once.
 */
export class GuardRuntime {
  readonly policy: PolicyStore;
  readonly pins: PinRuntime;
  readonly limiter: RateLimiter;
  readonly inventory = new Inventory();
  readonly audit: AuditSink;
  readonly metrics: RelayMetrics;
  readonly logger: Logger;
  private readonly signer: JwtSvidSigner | undefined;
  private readonly jwtTtl: number;
  private readonly sessions = new Set<SessionGuard>();
  private readonly profiles = new Map<string, RedactionProfile>();
  private readonly unsubscribe: () => void;
  private unvalidate: (() => void) | undefined;

  constructor(init: GuardRuntimeInit) {
    this.policy = init.policy;
    this.pins = init.pins;
    this.audit = init.audit;
    this.metrics = init.metrics;
    this.logger = init.logger;
    this.signer = init.signer;
    this.jwtTtl = init.jwtTtlSeconds ?? MAX_BACKEND_JWT_TTL_SECONDS;
    if (!Number.isInteger(this.jwtTtl) || this.jwtTtl < 1 || this.jwtTtl > MAX_BACKEND_JWT_TTL_SECONDS) {
      throw new TypeError(`guard: jwtTtlSeconds must be a whole number from 1 to ${MAX_BACKEND_JWT_TTL_SECONDS}`);
    }
    this.limiter = init.limiter ?? new RateLimiter();
    this.unsubscribe = this.pins.onApproved((server) => this.notifyServer(server, 'tools'));
  }

  /**
   * validate rejects a policy the relay cannot enforce as written: a server asking for
   * `identityToBackend` while relay.yaml configures no `jwtSigner`. Registered with the policy
   * store, so such a reload is refused and the old policy stays.
   */
  readonly validate = (snapshot: PolicySnapshot): void => {
    if (this.signer !== undefined) return;
    for (const s of snapshot.servers.values()) {
      if (s.identityToBackend) {
        throw new PolicyError(`policy: servers.${s.name}.identityToBackend: the relay has no jwtSigner configured (relay.yaml: jwtSigner.key), so it cannot mint identities for backends`, {
          path: `servers.${s.name}.identityToBackend`,
        });
      }
    }
  };

  /** enforceOn registers {@link validate} with the policy store (throws when the policy in force fails it). */
  enforceOn(): void {
    this.unvalidate = this.policy.addValidator(this.validate);
  }

  /** profile returns the redaction profile combining `names` (sorted, distinct), built once. */
  profile(names: readonly string[]): RedactionProfile {
    const key = names.join('+');
    let p = this.profiles.get(key);
    if (p === undefined) {
      p = combineProfiles(names);
      this.profiles.set(key, p);
    }
    return p;
  }

  /**
   * backendToken mints the JWT-SVID sent in OPEN for a session of `agent` to `server`, when the
   * server opted in (`identityToBackend`): audience = the server name, lifetime ≤ 5 minutes.
   */
  backendToken(snapshot: PolicySnapshot, agent: SpiffeId, server: string): string | undefined {
    if (snapshot.servers.get(server)?.identityToBackend !== true || this.signer === undefined) return undefined;
    return this.signer.sign({ subject: agent, audience: server, ttlSeconds: this.jwtTtl });
  }

  /** add registers a live session. */
  add(guard: SessionGuard): void {
    this.sessions.add(guard);
  }

  /** remove forgets a session that ended. */
  remove(guard: SessionGuard): void {
    this.sessions.delete(guard);
  }

  /** sessionCount is the number of live sessions registered. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** notifyServer sends a list_changed notification to the sessions of `server` that listed (`except` skipped). */
  notifyServer(server: string, what: keyof typeof LIST_CHANGED, except?: SessionGuard): void {
    for (const g of this.sessions) if (g !== except && g.server === server) g.listChanged(what);
  }

  /**
   * policySwapped applies a new policy to everything live, at once: connector links and sessions
   * of revoked identities are closed with 4401 (audited, with the number of sessions closed per
   * revocation entry); every other session re-checks its grants (4403 when access was withdrawn)
   * and is told when its visible tools, resources or prompts changed.
   */
  policySwapped(next: PolicySnapshot, previous: PolicySnapshot, links: Iterable<RevocableLink>): void {
    const closedBy = new Map<string, number>();
    const attribute = (id: SpiffeId, serial: string): void => {
      const s = normalizeSerial(serial);
      if (next.revoked.serials.has(s)) closedBy.set(`serial:${s}`, (closedBy.get(`serial:${s}`) ?? 0) + 1);
      for (const m of next.revoked.ids) {
        if (m.matches(id)) {
          closedBy.set(`id:${m.pattern}`, (closedBy.get(`id:${m.pattern}`) ?? 0) + 1);
          break;
        }
      }
    };
    for (const link of [...links]) {
      const d = revocationDecision(next, link.peer.id, link.peer.certSerial);
      if (d === undefined) continue;
      this.metrics.revocationCloses++;
      this.logger.warn({ connector: link.peer.id.toString(), reason: d.reason }, 'connector identity revoked; closing its link');
      link.shutdown(CloseCode.IDENTITY_REVOKED, 'identity revoked');
    }
    for (const g of [...this.sessions]) {
      const d = revocationDecision(next, g.agent.id, g.agent.certSerial);
      if (d !== undefined) {
        attribute(g.agent.id, g.agent.certSerial);
        this.metrics.revocationCloses++;
        this.logger.warn({ agent: g.agent.id.toString(), server: g.server, reason: d.reason }, 'agent identity revoked; closing its session');
        g.revoke();
        continue;
      }
      g.policyChanged();
    }
    const before = new Set([...previous.revoked.ids.map((m) => `id:${m.pattern}`), ...[...previous.revoked.serials].map((s) => `serial:${s}`)]);
    const entries = [...next.revoked.ids.map((m) => `id:${m.pattern}`), ...[...next.revoked.serials].map((s) => `serial:${s}`)];
    for (const e of entries) {
      if (before.has(e)) continue;
      const isId = e.startsWith('id:');
      this.audit.write({
        type: 'revocation',
        subject: isId ? e.slice(3) : null,
        certSerial: isId ? null : e.slice(7),
        reason: `listed under revoked in ${next.source ?? 'the policy'}`,
        sessionsClosed: closedBy.get(e) ?? 0,
      });
    }
  }

  /** close stops background work and flushes the pin store. */
  async close(): Promise<void> {
    this.unsubscribe();
    this.unvalidate?.();
    await this.pins.close();
  }
}
