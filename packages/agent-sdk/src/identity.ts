import { loadIdentityFiles, writeIdentityFiles, SpiffeId, TrustBundle, X509Svid, type IdMatcher, type Identity } from '@switchboard/pki';
import { CertificateRejectedError, IdentityError } from './errors.js';
import { IdentityRenewer, RelayTls, parseRelayId, renewOverRelays } from '@switchboard/protocol';

/** RenewerLogger is the part of a logger renewal reports to. */
interface RenewerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * AgentIdentity is an agent's X509-SVID and trust bundle, ready to dial relays. The TLS secure
 * context is built once per expected relay ID and shared by every session made with it, so opening
 * many sessions costs no key parsing. Make one per process and pass it to every
 * {@link RelayClientTransport} or `connect()`.
 *
 * @example
 * const identity = await AgentIdentity.fromDirectory('./ids/support');
 * const a = await connect({ relay, server: 'crm', identity });
 * const b = await connect({ relay, server: 'tickets', identity });
 */
export class AgentIdentity {
  private current: Identity;
  private readonly tls = new Map<string, RelayTls>();
  private readonly resumption: boolean;
  private readonly dir: string | undefined;
  private readonly listeners = new Set<(next: AgentIdentity) => void>();
  private renewer: IdentityRenewer | undefined;

  private constructor(identity: Identity, options: { tlsResumption?: boolean; dir?: string }) {
    this.current = identity;
    this.resumption = options.tlsResumption ?? true;
    this.dir = options.dir;
  }

  /** identity is the SVID and bundle in use now (a renewal replaces it). */
  get identity(): Identity {
    return this.current;
  }

  /**
   * replace puts a renewed identity in use: new sessions dial with it, and every listener (each
   * live {@link RelayClientTransport}) moves its session to it in place (REAUTH). Written to the
   * identity directory, when there is one, in the spiffe-helper layout (each file atomically).
   */
  async replace(next: Identity): Promise<void> {
    if (!next.svid.id.equals(this.current.svid.id)) throw new TypeError(`agent: a renewed identity must keep ${this.current.svid.id.toString()}, not ${next.svid.id.toString()}`);
    if (this.dir !== undefined) await writeIdentityFiles(this.dir, next, { force: true });
    this.current = next;
    this.tls.clear();
    for (const l of this.listeners) l(this);
  }

  /** onReplaced calls `listener` after each {@link replace}; returns the function that stops it. */
  onReplaced(listener: (next: AgentIdentity) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * startRenewal renews this identity over `relay` (`POST /v1/renew`) at half its lifetime, with
   * jitter and backoff ({@link IdentityRenewer}), and {@link replace}s it each time. Idempotent;
   * {@link stopRenewal} ends it. The relay must hold an issuer (relay.yaml `renewal`).
   */
  startRenewal(relay: string | readonly string[], options: { relayId?: string | SpiffeId; logger?: RenewerLogger } = {}): IdentityRenewer {
    if (this.renewer) return this.renewer;
    const relays = typeof relay === 'string' ? [relay] : [...relay];
    const rule = resolveRelayId(options.relayId);
    this.renewer = new IdentityRenewer({
      current: () => this.current,
      renew: async () => renewOverRelays(relays, this.tlsFor(rule)),
      install: (next) => this.replace(next),
      ...(options.logger ? { logger: options.logger } : {}),
    }).start();
    return this.renewer;
  }

  /** stopRenewal stops a renewal started by {@link startRenewal}. */
  async stopRenewal(): Promise<void> {
    const r = this.renewer;
    this.renewer = undefined;
    await r?.stop();
  }

  /**
   * AgentIdentity.fromDirectory reads `svid.pem`, `svid_key.pem` and `bundle.pem`.
   * `tlsResumption` (default on) reuses TLS sessions with a relay: 2.4–2.7× faster session setup.
   * The relay then sees only our leaf certificate; turn it off for a relay that cannot handle that.
   */
  static async fromDirectory(dir: string, options: { tlsResumption?: boolean } = {}): Promise<AgentIdentity> {
    let identity: Identity;
    try {
      identity = await loadIdentityFiles(dir);
    } catch (err) {
      throw new IdentityError(`cannot load the identity in ${dir}: ${(err as Error).message}`, { cause: err });
    }
    return new AgentIdentity(identity, { ...options, dir });
  }

  /** AgentIdentity.from wraps an identity already in memory (an {@link Identity} or an AgentIdentity). */
  static from(identity: Identity | AgentIdentity, options: { tlsResumption?: boolean } = {}): AgentIdentity {
    if (identity instanceof AgentIdentity) return identity;
    if (!(identity?.svid instanceof X509Svid) || !(identity.bundle instanceof TrustBundle)) {
      throw new TypeError('agent: identity must be a directory path or an { svid, bundle } identity');
    }
    return new AgentIdentity(identity, options);
  }

  /** id is the agent's SPIFFE ID. */
  get id(): SpiffeId {
    return this.identity.svid.id;
  }

  /** expiresAt is when the agent's certificate expires. */
  get expiresAt(): Date {
    return this.identity.svid.expiresAt;
  }

  /**
   * checkValidity throws {@link CertificateRejectedError} when our certificate is expired or not yet
   * valid at `now`: the relay would refuse it, with a less helpful error.
   */
  checkValidity(now: number = Date.now()): void {
    const leaf = this.identity.svid.leaf;
    const to = Date.parse(leaf.validTo);
    const from = Date.parse(leaf.validFrom);
    if (now > to) {
      throw new CertificateRejectedError('expired', `our certificate ${this.id.toString()} expired at ${new Date(to).toISOString()}; issue a fresh one (switchboard identity issue …)`);
    }
    if (now < from) {
      throw new CertificateRejectedError('not-yet-valid', `our certificate ${this.id.toString()} is not valid before ${new Date(from).toISOString()}; check this host's clock`);
    }
  }

  /**
   * tlsFor returns the TLS material for relays whose SPIFFE ID matches `relayId` (default:
   * `spiffe://<our trust domain>/relay/*`). Throws `TypeError` for a rule outside our trust domain.
   */
  tlsFor(relayId?: IdMatcher): RelayTls {
    const key = relayId?.pattern ?? '';
    let tls = this.tls.get(key);
    if (!tls) {
      try {
        tls = new RelayTls(this.identity, {
          relayId,
          resumption: this.resumption,
          untrusted: (message, cause) => new CertificateRejectedError('relay-untrusted', `the relay's certificate is not acceptable: ${message}`, cause === undefined ? {} : { cause }),
        });
      } catch (err) {
        throw new TypeError(`agent: ${(err as Error).message}`, { cause: err });
      }
      this.tls.set(key, tls);
    }
    return tls;
  }
}

/** loadIdentity is `AgentIdentity.fromDirectory(dir)`. */
export function loadIdentity(dir: string, options: { tlsResumption?: boolean } = {}): Promise<AgentIdentity> {
  return AgentIdentity.fromDirectory(dir, options);
}

/**
 * resolveRelayId parses an optional relay rule (an exact SPIFFE ID or a pattern such as
 * `spiffe://example.org/relay/*`); a caller mistake is a TypeError.
 */
export function resolveRelayId(relayId: string | SpiffeId | undefined): IdMatcher | undefined {
  if (relayId === undefined) return undefined;
  try {
    return parseRelayId(relayId);
  } catch (err) {
    throw new TypeError(`agent: ${(err as Error).message}`, { cause: err });
  }
}
