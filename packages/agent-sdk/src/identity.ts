import { loadIdentityFiles, writeIdentityFiles, PkiError, SpiffeId, TrustBundle, WorkloadApiSource, X509Svid, type IdMatcher, type Identity, type WorkloadApiOptions } from '@switchboard/pki';
import { CertificateRejectedError, IdentityError } from './errors.js';
import { EnrollFileError, IdentityRenewer, RelayTls, enrollIfEmpty, parseRelayId, renewOverRelays, type EnrollSetting } from '@switchboard/protocol';

/**
 * AgentIdentitySpec is where an agent's identity comes from: an identity directory, the SPIFFE
 * Workload API (`{ workloadApi: { endpoint?, id?, hint? } }`), or an identity in memory.
 */
export type AgentIdentitySpec = string | Identity | AgentIdentity | { workloadApi: Omit<WorkloadApiOptions, 'logger' | 'firstTimeoutMs'> };

/** OpenIdentityOptions tune {@link AgentIdentity.open}. */
export interface OpenIdentityOptions {
  tlsResumption?: boolean;
  /** enroll gets the first identity into an empty identity directory with a single-use token (docs/identity.md). */
  enroll?: EnrollSetting;
  /** relayId is the relay rule enrollment checks the enrollment listener against. */
  relayId?: string | SpiffeId;
  logger?: RenewerLogger;
}

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
  private workloadApi: WorkloadApiSource | undefined;

  private constructor(identity: Identity, options: { tlsResumption?: boolean; dir?: string }) {
    this.current = identity;
    this.resumption = options.tlsResumption ?? true;
    this.dir = options.dir;
  }

  /**
   * AgentIdentity.open takes an identity from wherever `spec` says: a directory (enrolling first
   * with `options.enroll` when it holds no SVID yet), the SPIFFE Workload API (rotated as the
   * stream delivers it, each rotation {@link replace}d in), or memory. Throws {@link IdentityError}.
   */
  static async open(spec: AgentIdentitySpec, options: OpenIdentityOptions = {}): Promise<AgentIdentity> {
    const resumption = options.tlsResumption === undefined ? {} : { tlsResumption: options.tlsResumption };
    if (typeof spec === 'string') {
      if (options.enroll !== undefined) {
        try {
          const enrolled = await enrollIfEmpty(spec, options.enroll, options.relayId === undefined ? {} : { relayId: options.relayId });
          if (enrolled !== undefined) options.logger?.info({ id: enrolled.svid.id.toString(), dir: spec, expiresAt: enrolled.svid.expiresAt.toISOString() }, 'enrolled: first identity written');
        } catch (err) {
          throw new IdentityError(err instanceof EnrollFileError ? err.message : `enroll: ${(err as Error).message}`, { cause: err });
        }
      }
      return AgentIdentity.fromDirectory(spec, resumption);
    }
    if (options.enroll !== undefined) throw new TypeError('agent: enrollment needs the identity to be a directory (the enrolled identity is written there)');
    if (spec instanceof AgentIdentity) return spec;
    if (typeof spec === 'object' && spec !== null && 'workloadApi' in spec) return AgentIdentity.fromWorkloadApi(spec.workloadApi, { ...resumption, ...(options.logger ? { logger: options.logger } : {}) });
    return AgentIdentity.from(spec, resumption);
  }

  /**
   * AgentIdentity.fromWorkloadApi takes the identity from the SPIFFE Workload API
   * (`SPIFFE_ENDPOINT_SOCKET` unless `endpoint` is given) and follows its rotations: each new SVID
   * is {@link replace}d in, so live sessions move to it in place. {@link close} ends the stream.
   * Renewal over the relay does not apply (the SPIFFE agent rotates the SVID).
   */
  static async fromWorkloadApi(options: WorkloadApiOptions = {}, more: { tlsResumption?: boolean; logger?: RenewerLogger } = {}): Promise<AgentIdentity> {
    let source: WorkloadApiSource;
    try {
      source = await WorkloadApiSource.connect({ ...options, ...(more.logger && !options.logger ? { logger: more.logger } : {}) });
    } catch (err) {
      const detail = err instanceof PkiError ? `${err.code}: ${err.message}` : String(err);
      throw new IdentityError(`cannot get an identity from the workload api: ${detail}`, { cause: err });
    }
    const identity = new AgentIdentity(source.identity, more.tlsResumption === undefined ? {} : { tlsResumption: more.tlsResumption });
    identity.workloadApi = source;
    source.onUpdate((next) => {
      identity.replace(next).catch((err: Error) => more.logger?.warn({ err: err.message }, 'cannot use the rotated identity'));
    });
    return identity;
  }

  /** fromWorkloadApiSource is true when the SPIFFE Workload API delivers (and rotates) this identity. */
  get fromWorkloadApiSource(): boolean {
    return this.workloadApi !== undefined;
  }

  /** renewable is true when {@link startRenewal} applies: the identity was read from a directory. */
  get renewable(): boolean {
    return this.dir !== undefined;
  }

  /** close stops renewal and the Workload API stream, if any; the identity stays usable as it is. */
  async close(): Promise<void> {
    await this.stopRenewal();
    this.workloadApi?.close();
    this.workloadApi = undefined;
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
    if (this.workloadApi !== undefined) throw new TypeError('agent: the SPIFFE Workload API rotates this identity; renewal over the relay is for identities read from a directory');
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
