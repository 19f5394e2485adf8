import type { Logger } from '@switchboard/common';
import { combineProfiles, RateLimiter, type RateRule, type RedactionProfile } from '@switchboard/guard';
import type { JwtSvidSigner, SpiffeId } from '@switchboard/pki';
import { CloseCode } from '@switchboard/protocol';
import type { AuditSink } from '../audit/sink.js';
import type { PeerIdentity } from '../auth/peer-auth.js';
import { MAX_BACKEND_JWT_TTL_SECONDS } from '../config/enforcement-config.js';
import { PolicyError } from '../errors.js';
import type { RelayMetrics } from '../metrics.js';
import type { PolicySnapshot } from '../policy/compile.js';
import type { Decision } from '../policy/document.js';
import type { PolicyStore } from '../policy/store.js';
import { Inventory } from './inventory.js';
import type { PinRuntime } from './pin-runtime.js';
import type { ListKind } from './refusals.js';

/**
 * EnforcedSession is a live session as relay-wide enforcement sees it (a {@link SessionEnforcer}
 * is one): it can re-check itself against a new policy and hear that a list changed.
 */
export interface EnforcedSession {
  readonly server: string;
  readonly agent: PeerIdentity;
  /** policyChanged takes the scope from the policy in force; a refused session closes itself. */
  policyChanged(): Decision;
  listChanged(what: ListKind): void;
}

/** RevocableLink is what enforcement needs of a connector link to close it on revocation. */
export interface RevocableLink {
  readonly peer: PeerIdentity;
  shutdown(code: number, reason: string): void;
}

/** EnforcementInit configures an {@link Enforcement}. */
export interface EnforcementInit {
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
  /** replicas divides every rate limit: this relay enforces its share (relay.yaml `enforcement.replicas`). */
  replicas?: number;
}

/**
 * Enforcement is the relay-wide state of policy enforcement: the rate limiter (per agent and
 * rule, across sessions), the pin store, the tool inventory behind `GET /v1/servers`, the
 * JWT-SVID signer, the redaction profiles in use, and the set of live sessions — so a policy swap,
 * a revocation or a pin approval reaches every session at once.
 */
export class Enforcement {
  readonly policy: PolicyStore;
  readonly pins: PinRuntime;
  readonly limiter: RateLimiter;
  readonly inventory = new Inventory();
  readonly audit: AuditSink;
  readonly metrics: RelayMetrics;
  readonly logger: Logger;
  private readonly signer: JwtSvidSigner | undefined;
  private readonly jwtTtl: number;
  private readonly sessions = new Set<EnforcedSession>();
  private readonly profiles = new Map<string, RedactionProfile>();
  private readonly unsubscribe: () => void;
  private unvalidate: (() => void) | undefined;
  private readonly replicas: number;
  private readonly shares = new WeakMap<RateRule, RateRule>();

  constructor(init: EnforcementInit) {
    this.policy = init.policy;
    this.pins = init.pins;
    this.audit = init.audit;
    this.metrics = init.metrics;
    this.logger = init.logger;
    this.signer = init.signer;
    this.jwtTtl = init.jwtTtlSeconds ?? MAX_BACKEND_JWT_TTL_SECONDS;
    if (!Number.isInteger(this.jwtTtl) || this.jwtTtl < 1 || this.jwtTtl > MAX_BACKEND_JWT_TTL_SECONDS) {
      throw new TypeError(`enforce: jwtTtlSeconds must be a whole number from 1 to ${MAX_BACKEND_JWT_TTL_SECONDS}`);
    }
    this.limiter = init.limiter ?? new RateLimiter();
    this.replicas = init.replicas ?? 1;
    this.unsubscribe = this.pins.onApproved((server) => this.notifyServer(server, 'tools'));
  }

  /**
   * share is the part of `rule` this replica enforces: `calls` and `concurrent` divided by the
   * number of replicas (at least 1 each), so the replicas together stay within the rule.
   */
  share(rule: RateRule): RateRule {
    if (this.replicas === 1) return rule;
    let s = this.shares.get(rule);
    if (s === undefined) {
      const part = (n: number | undefined): number | undefined => (n === undefined ? undefined : Math.max(1, Math.floor(n / this.replicas)));
      s = Object.freeze({ ...rule, calls: part(rule.calls), concurrent: part(rule.concurrent) }) as RateRule;
      this.shares.set(rule, s);
    }
    return s;
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
  add(session: EnforcedSession): void {
    this.sessions.add(session);
  }

  /** remove forgets a session that ended. */
  remove(session: EnforcedSession): void {
    this.sessions.delete(session);
  }

  /** sessionCount is the number of live sessions registered. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** notifyServer sends a list_changed notification to the sessions of `server` that listed (`except` skipped). */
  notifyServer(server: string, what: ListKind, except?: EnforcedSession): void {
    for (const s of this.sessions) if (s !== except && s.server === server) s.listChanged(what);
  }

  /**
   * policySwapped applies the policy now in force to everything live, at once: connector links
   * and sessions of revoked identities are closed with 4401 (audited, with the number of sessions
   * closed per revocation entry); every other session takes its new scope (4403 when access was
   * withdrawn) and is told when its visible tools, resources or prompts changed.
   */
  policySwapped(next: PolicySnapshot, previous: PolicySnapshot, links: Iterable<RevocableLink>): void {
    for (const link of [...links]) {
      const revoked = this.policy.identity(link.peer).revoked;
      if (revoked === undefined) continue;
      this.metrics.revocationCloses++;
      this.logger.warn({ connector: link.peer.id.toString(), reason: revoked.reason }, 'connector identity revoked; closing its link');
      link.shutdown(CloseCode.IDENTITY_REVOKED, 'identity revoked');
    }
    // Which revocation entry closed how many sessions, for the audit records below.
    const closedBy = new Map<string, number>();
    for (const s of [...this.sessions]) {
      const d = s.policyChanged();
      if (d.revoked !== true) continue;
      if (d.revokedBy !== undefined) closedBy.set(d.revokedBy, (closedBy.get(d.revokedBy) ?? 0) + 1);
      this.metrics.revocationCloses++;
      this.logger.warn({ agent: s.agent.id.toString(), server: s.server, reason: d.reason }, 'agent identity revoked; closed its session');
    }
    const before = new Set(revocationEntries(previous));
    for (const e of revocationEntries(next)) {
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

/** revocationEntries names every `revoked` entry of a snapshot as decisions name them (`revokedBy`). */
function revocationEntries(snapshot: PolicySnapshot): string[] {
  return [...snapshot.revoked.ids.map((m) => `id:${m.pattern}`), ...[...snapshot.revoked.serials].map((s) => `serial:${s}`)];
}
