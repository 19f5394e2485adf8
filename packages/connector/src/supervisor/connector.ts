import { Tracing } from '@switchboard/common/tracing';
import { CONNECTOR_VERSION } from '../version.js';
import { AdminServer } from '../admin/admin-server.js';
import { ConnectorMetrics } from '../admin/metrics.js';
import type { BackendFactory } from '../backend/backend.js';
import { createBackend } from '../backend/create-backend.js';
import { WarmPool, type PoolCounters } from '../backend/warm-pool.js';
import { SharedHub } from '../backend/shared-backend.js';
import { PkiError, WorkloadApiSource, type Identity } from '@switchboard/pki';
import { isWorkloadApiSetting, type WorkloadApiSetting } from '@switchboard/common/config';
import type { ConnectorConfig, EnrollConfig } from '../config.js';
import { access, constants as fsConstants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { ConfigError, ConfigUnreadableError, IdentityError, type ConnectorError } from '../errors.js';
import { IdentitySource } from '../internal/identity-source.js';
import { DEFAULT_LINK_TIMING, type LinkCounters, type LinkTiming } from '../link/link.js';
import { DEFAULT_OUTPUT_BUFFER_BYTES } from '../link/session.js';
import { ResumeTable, type ResumeCounters } from '../link/resume-table.js';
import { silentLogger, type Logger } from '@switchboard/common';
import { EnrollFileError, IdentityRenewer, enrollIfEmpty, renewOverRelays, type RenewerStatus } from '@switchboard/protocol';
import { realSleep, type BackoffOptions, type Sleep } from './backoff.js';
import type { LinkStatus } from '../link/link-status.js';
import { RelaySupervisor } from './relay-supervisor.js';
import { SandboxUnavailableError, isContained, planSandbox, type SandboxPlan } from '../sandbox/sandbox.js';

/** DEFAULT_DRAIN_TIMEOUT_MS is how long `close()` lets open sessions finish (30 s). */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;
const SOCKET_CLOSE_TIMEOUT_MS = 5000;

/** StartConnectorOptions tune {@link startConnector}; every field is optional and defaults to the protocol's values. */
export interface StartConnectorOptions {
  /** logger receives structured logs; the connector is silent without one. */
  logger?: Logger;
  /** drainTimeoutMs bounds how long `close()` waits for open sessions (default 30 s). */
  drainTimeoutMs?: number;
  /** maxSessionsPerLink refuses OPEN beyond this many sessions on one link (default 1024). */
  maxSessionsPerLink?: number;
  /** outputBufferBytes bounds one session's output waiting for credit (default 8 MiB; past it: close 4508). */
  outputBufferBytes?: number;
  /** timing overrides the link timers (ping 10 s, silence 30 s, WELCOME 10 s, handshake 10 s). */
  timing?: Partial<LinkTiming>;
  /** backoff overrides the reconnect backoff (1 s base, 30 s cap, reset after 60 s) and its clock. */
  backoff?: BackoffOptions;
  /**
   * tlsResumption reuses TLS sessions when redialing a relay (default on: 2.4–2.7× faster
   * handshakes). On a resumed TLS 1.3 session the relay sees only our leaf certificate, which the
   * Switchboard relay handles; turn it off for a relay that does not.
   */
  tlsResumption?: boolean;
  /** createBackend replaces the backend factory (tests, embedding). */
  createBackend?: BackendFactory;
  /** now is the clock in milliseconds (tests). */
  now?: () => number;
  /** sleep is the timer used between reconnects (tests). */
  sleep?: Sleep;
  /**
   * renew renews the identity over the relays at half its lifetime (default on; docs/identity.md).
   * A relay without an issuer refuses (RENEW_ERR_DISABLED): the failures are logged, counted, and
   * `/readyz` turns unready once less than a quarter of the lifetime is left.
   */
  renew?: boolean;
}

/** Connector is a running connector. */
export interface Connector {
  /** ready resolves after the first WELCOME that accepted at least one server on some link; rejects if the connector fails first. */
  ready(): Promise<void>;
  /**
   * close shuts down gracefully: GOAWAY on every link, open sessions drain for up to the drain
   * timeout, the rest are closed with 4509, links close with 1001, backends are stopped.
   */
  close(options?: { drainTimeoutMs?: number }): Promise<void>;
  /** links reports one {@link LinkStatus} per configured relay. */
  links(): LinkStatus[];
  /** wait settles when the connector stops: resolves after `close()`, rejects with the error that made it give up. */
  wait(): Promise<void>;
  /** adminAddress is where the admin listener is bound, when one is configured. */
  readonly adminAddress: { host: string; port: number } | undefined;
  /** renewal reports the identity renewer, when renewal is on. */
  renewal(): RenewerStatus | undefined;
  /** ready is false once the identity is about to expire without a renewal in sight. */
  identityHealthy(): boolean;
  /** pools reports each warm pool: its server and how many pre-spawned processes wait in it. */
  pools(): { server: string; ready: number }[];
}

/**
 * startConnector loads the identity, starts the optional loopback admin listener, and dials every
 * relay. It returns once dialing began; use `ready()` to wait for the first accepted WELCOME.
 * Throws at once on an unreadable or expired identity, or a relayId outside our trust domain.
 *
 * @example
 * const connector = await startConnector(await loadConnectorConfig('connector.yaml'), { logger });
 * await connector.ready();
 * process.once('SIGTERM', () => void connector.close());
 * await connector.wait();
 */
export async function startConnector(config: ConnectorConfig, options: StartConnectorOptions = {}): Promise<Connector> {
  const now = options.now ?? Date.now;
  const logger = options.logger ?? silentLogger;
  // A command that cannot run fails here, naming the server, not at an agent's first session (4502);
  // so does a contained server whose sandbox cannot be set up (never run uncontained instead).
  let plans = new Map<string, SandboxPlan>();
  if (options.createBackend === undefined) plans = await planContainment(config, await checkCommands(config.servers), logger);
  if (config.enroll !== undefined && typeof config.identity === 'string') await enrollIfNeeded(config.identity, config.enroll, config.relayId, logger);
  const workloadApi = isWorkloadApiSetting(config.identity) ? await openWorkloadApi(config.identity.workloadApi, logger) : undefined;
  let identity: IdentitySource;
  try {
    identity = new IdentitySource(workloadApi?.identity ?? (config.identity as string | Identity), { relayId: config.relayId, resumption: options.tlsResumption ?? true, now });
    // Fail fast on identity problems: they are the operator's to fix, before anything is dialed.
    await identity.current();
  } catch (err) {
    workloadApi?.close();
    throw err;
  }
  const impl = new ConnectorImpl(config, options, identity, now, workloadApi, plans);
  if (config.admin) impl.admin = await AdminServer.listen(config.admin, impl, impl.metrics);
  impl.start();
  return impl;
}

/**
 * checkCommands refuses a stdio server whose `command` cannot be run: a path that does not exist
 * or is not executable, or a name not found on the PATH the process will get (its `env.PATH`, else
 * the connector's). Throws {@link ConfigError} at `servers.<name>.command`.
 */
export async function checkCommands(servers: ConnectorConfig['servers']): Promise<Map<string, string>> {
  const resolved = new Map<string, string>();
  for (const [name, s] of Object.entries(servers)) {
    if (s.kind !== 'stdio') continue;
    const at = `servers.${name}.command`;
    if (s.command.includes('/') || s.command.includes('\\')) {
      try {
        await access(s.command, fsConstants.X_OK);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new ConfigError(at, `${s.command} ${code === 'ENOENT' ? 'does not exist' : `is not executable (${code ?? 'unknown'})`}`);
      }
      resolved.set(name, s.command);
      continue;
    }
    const dirs = (s.env.PATH ?? process.env.PATH ?? '').split(delimiter).filter((d) => d !== '');
    let found = false;
    for (const dir of dirs) {
      try {
        await access(join(dir, s.command), fsConstants.X_OK);
        found = true;
        resolved.set(name, join(dir, s.command));
        break;
      } catch {
        // not in this directory
      }
    }
    if (!found) throw new ConfigError(at, `"${s.command}" is not found on the PATH the server gets (${dirs.join(delimiter) || 'empty'}); give its full path, or set servers.${name}.env.PATH`);
  }
  return resolved;
}

/**
 * planContainment resolves every contained stdio server's sandbox at start (docs/containment.md):
 * a server that cannot be contained here stops the connector with a {@link ConfigError} naming it
 * and what is missing. `egress: any` and `filesystem: any` are logged, as the opt-outs they are.
 */
export async function planContainment(config: ConnectorConfig, commands: ReadonlyMap<string, string>, logger: Logger): Promise<Map<string, SandboxPlan>> {
  const plans = new Map<string, SandboxPlan>();
  const secrets = [typeof config.identity === 'string' ? config.identity : undefined, config.enroll?.token, config.file].filter((p): p is string => p !== undefined);
  for (const [name, s] of Object.entries(config.servers)) {
    if (s.kind !== 'stdio') continue;
    const { egress, filesystem } = s.containment;
    if (egress === 'any') logger.warn({ server: name }, `servers.${name} has egress: any: it reaches the network without a filter`);
    if (filesystem === 'any') logger.warn({ server: name }, `servers.${name} has filesystem: any: it reads and writes whatever the connector's user may`);
    if (!isContained(s.containment)) continue;
    try {
      plans.set(name, await planSandbox(s.containment, commands.get(name) ?? s.command, s.args, s.cwd, secrets));
    } catch (err) {
      const what = err instanceof SandboxUnavailableError ? `cannot be contained on this host: ${err.message}` : (err as Error).message;
      throw new ConfigError(`servers.${name}`, what);
    }
  }
  return plans;
}

/** enrollIfNeeded gets the first identity into `dir` with the enrollment token when the directory holds no SVID yet. */
async function enrollIfNeeded(dir: string, enroll: EnrollConfig, relayId: ConnectorConfig['relayId'], logger: Logger): Promise<void> {
  let identity: Identity | undefined;
  try {
    identity = await enrollIfEmpty(dir, enroll, relayId === undefined ? {} : { relayId });
  } catch (err) {
    if (err instanceof EnrollFileError && (err.cause as NodeJS.ErrnoException | undefined)?.code !== undefined) throw new ConfigUnreadableError(err.message, { cause: err });
    throw new IdentityError(err instanceof EnrollFileError ? err.message : `enroll: ${(err as Error).message}`, { cause: err });
  }
  if (identity !== undefined) logger.info({ id: identity.svid.id.toString(), dir, expiresAt: identity.svid.expiresAt.toISOString() }, 'enrolled: first identity written');
}

/** openWorkloadApi takes the first identity from the SPIFFE Workload API; a failure is an {@link IdentityError} naming the endpoint. */
async function openWorkloadApi(setting: WorkloadApiSetting, logger: Logger): Promise<WorkloadApiSource> {
  try {
    return await WorkloadApiSource.connect({ ...setting, logger: logger.child({ component: 'workload-api' }) });
  } catch (err) {
    const detail = err instanceof PkiError ? `${err.code}: ${err.message}` : String(err);
    throw new IdentityError(detail, { cause: err });
  }
}

class ConnectorImpl implements Connector {
  admin: AdminServer | undefined;
  private readonly supervisors: RelaySupervisor[] = [];
  private readonly logger: Logger;
  private readonly stats: LinkCounters & ResumeCounters & PoolCounters & { reconnects: number; renewals: number; renewalFailures: number; sharedRestarts: number } = {
    sessionsOpened: 0,
    openFailures: 0,
    sessionsClosed: 0,
    backendFailures: 0,
    overflows: 0,
    relayCertExpiries: 0,
    egressDenied: 0,
    reconnects: 0,
    renewals: 0,
    renewalFailures: 0,
    sessionsDetached: 0,
    sessionsResumed: 0,
    resumesRefused: 0,
    resumeExpiries: 0,
    poolHits: 0,
    poolMisses: 0,
    poolRetired: 0,
    sharedRestarts: 0,
  };
  /** pools are the warm pools of the stdio servers that have `pool` (default backends only). */
  private readonly warmPools = new Map<string, WarmPool>();
  /** hubs are the shared backends of the servers with `isolation: shared` (default backends only). */
  private readonly hubs = new Map<string, SharedHub>();
  private readonly resumes: ResumeTable;
  /** metrics is the registry behind /metrics; the links report backend timings to it. */
  readonly metrics: ConnectorMetrics = new ConnectorMetrics(this, Object.keys(this.stats));
  private readonly readyPromise: Promise<void>;
  private readonly waitPromise: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;
  private resolveWait!: () => void;
  private rejectWait!: (err: Error) => void;
  private closing: Promise<void> | undefined;
  private failed = false;
  private renewer: IdentityRenewer | undefined;
  /** tracing records spans when connector.yaml has `tracing` (off otherwise). */
  private readonly tracing: Tracing;

  constructor(
    private readonly config: ConnectorConfig,
    private readonly options: StartConnectorOptions,
    private readonly identity: IdentitySource,
    private readonly now: () => number,
    private readonly workloadApi: WorkloadApiSource | undefined = undefined,
    private readonly plans: ReadonlyMap<string, SandboxPlan> = new Map(),
  ) {
    this.logger = (options.logger ?? silentLogger).child({ component: 'connector' });
    this.tracing = config.tracing === undefined ? Tracing.off : Tracing.start(config.tracing, { serviceName: 'switchboard-connector', serviceVersion: CONNECTOR_VERSION });
    this.resumes = new ResumeTable(config.resumeGraceMs, this.stats, this.logger);
    this.readyPromise = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.waitPromise = new Promise((resolve, reject) => {
      this.resolveWait = resolve;
      this.rejectWait = reject;
    });
    // Callers may never ask; a fatal error must not become an unhandled rejection.
    this.readyPromise.catch(() => undefined);
    this.waitPromise.catch(() => undefined);
  }

  get adminAddress(): { host: string; port: number } | undefined {
    return this.admin?.address;
  }

  /** backendFor is the default backend factory: a warm process when the server's pool has one, else a new backend. */
  private readonly backendFor: BackendFactory = (server, open, sink, log) =>
    this.hubs.get(open.server)?.session(sink, log) ?? this.warmPools.get(open.server)?.take(open, sink, log) ?? createBackend(server, open, sink, log, this.plans.get(open.server));

  start(): void {
    const timing = { ...DEFAULT_LINK_TIMING, ...this.options.timing };
    if (this.options.createBackend === undefined) {
      for (const [name, s] of Object.entries(this.config.servers)) {
        if (s.isolation === 'shared') {
          this.hubs.set(name, new SharedHub(name, s, this.plans.get(name), this.logger.child({ server: name, shared: true }), () => this.stats.sharedRestarts++));
          continue;
        }
        if (s.kind !== 'stdio' || s.pool === undefined) continue;
        this.warmPools.set(name, new WarmPool(name, s, s.pool, this.plans.get(name), this.logger.child({ server: name }), this.stats).start());
      }
    }
    for (const relay of this.config.relays) {
      this.supervisors.push(
        new RelaySupervisor(relay, {
          identity: this.identity,
          servers: this.config.servers,
          createBackend: this.options.createBackend ?? this.backendFor,
          logger: this.logger,
          timing,
          backoff: { sleep: this.options.sleep ?? realSleep, ...this.options.backoff },
          maxSessions: this.options.maxSessionsPerLink ?? 1024,
          outputBufferBytes: this.options.outputBufferBytes ?? DEFAULT_OUTPUT_BUFFER_BYTES,
          counters: this.stats,
          timings: this.metrics,
          ...(this.tracing.enabled ? { tracing: this.tracing } : {}),
          resumes: this.resumes,
          now: this.now,
          onReady: () => this.resolveReady(),
          onFatal: (err) => this.fail(err),
        }),
      );
    }
    this.logger.info({ relays: this.config.relays, servers: Object.keys(this.config.servers) }, 'connector started');
    // SPIRE rotates a Workload API identity by itself; renewal over the relay is for file identities.
    if (this.workloadApi !== undefined) this.workloadApi.onUpdate((next) => void this.applyIdentity(next).catch((err: Error) => this.logger.warn({ err: err.message }, 'cannot use the rotated identity')));
    else if (this.options.renew !== false) this.startRenewal();
  }

  // A new identity (renewed, or rotated by the Workload API) for every later dial, and on every live link in place.
  private async applyIdentity(next: Identity): Promise<void> {
    const tls = await this.identity.install(next);
    this.stats.renewals++;
    await Promise.all(this.supervisors.flatMap((s) => s.links()).map((l) => l.reauthenticate(tls)));
  }

  renewal(): RenewerStatus | undefined {
    return this.renewer?.status();
  }

  identityHealthy(): boolean {
    if (this.workloadApi !== undefined) return this.workloadApi.healthy(this.now());
    return this.renewer?.healthy() ?? true;
  }

  // Renew over each relay in turn until one answers; then every later dial and every live link uses the new identity.
  private startRenewal(): void {
    const current = this.identity.identity;
    if (current === undefined) return;
    this.renewer = new IdentityRenewer({
      current: () => this.identity.identity ?? current,
      renew: async () => renewOverRelays(this.config.relays, await this.identity.current(), { onFailure: () => this.stats.renewalFailures++ }),
      install: (next) => this.applyIdentity(next),
      logger: this.logger,
      now: this.now,
    }).start();
  }

  ready(): Promise<void> {
    return this.readyPromise;
  }

  wait(): Promise<void> {
    return this.waitPromise;
  }

  links(): LinkStatus[] {
    return this.supervisors.map((s) => s.status());
  }

  pools(): { server: string; ready: number }[] {
    return [...this.warmPools.values()].map((p) => ({ server: p.server, ready: p.available }));
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.stats };
  }

  close(options: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.closing ??= this.shutdown(options.drainTimeoutMs ?? this.options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS, 'connector shutting down').then(
      () => {
        this.rejectReady(new Error('connector: closed before any relay accepted it'));
        if (!this.failed) this.resolveWait();
      },
    );
    return this.closing;
  }

  private fail(err: ConnectorError): void {
    if (this.failed || this.closing) return;
    this.failed = true;
    this.rejectReady(err);
    this.closing = this.shutdown(0, 'connector stopped').then(() => this.rejectWait(err));
  }

  private async shutdown(drainMs: number, reason: string): Promise<void> {
    for (const s of this.supervisors) s.stop();
    await this.renewer?.stop();
    this.workloadApi?.close();
    const links = this.supervisors.flatMap((s) => s.links());
    for (const l of links) {
      if (l.state === 'up' || l.state === 'draining') l.goaway(reason);
      else l.terminate();
    }
    if (drainMs > 0) {
      const drained = Promise.all(links.map((l) => l.whenDrained()));
      const timer = new AbortController();
      await Promise.race([drained, realSleep(drainMs, timer.signal)]);
      timer.abort();
      this.logger.info({ remaining: links.reduce((n, l) => n + l.sessionCount, 0) }, 'drain finished');
    }
    const timer = new AbortController();
    await Promise.race([Promise.all(links.map((l) => l.shutdown('connector shut down'))), realSleep(SOCKET_CLOSE_TIMEOUT_MS, timer.signal)]);
    timer.abort();
    for (const l of links) l.terminate();
    await this.resumes.closeAll();
    await Promise.all([...this.warmPools.values(), ...this.hubs.values()].map((p) => p.close()));
    await Promise.all(this.supervisors.map((s) => s.loop));
    // Links dialed while we were stopping (a supervisor between its checks) are gone with the loop.
    for (const l of this.supervisors.flatMap((s) => s.links())) l.terminate();
    await this.admin?.close();
    await this.tracing.shutdown().catch((err: Error) => this.logger.warn({ err: err.message }, 'could not send the last spans'));
    this.logger.info({}, 'connector stopped');
  }
}
