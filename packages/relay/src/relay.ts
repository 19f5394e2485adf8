import { access, constants as fsConstants } from 'node:fs/promises';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { silentLogger, type Logger } from '@switchboard/common';
import type { AuditFs } from '@switchboard/audit';
import { PkiError, SvidIssuer, WorkloadApiSource, parseIdMatcher, type Identity, type JwtSvidSigner, type SpiffeId } from '@switchboard/pki';
import type { IdentityRenewer } from '@switchboard/protocol';
import { isWorkloadApiSetting, type WorkloadApiSetting } from '@switchboard/common/config';
import { policyReloadRecord, type RelayAuditOptions } from './audit/open.js';
import type { AuditSink } from './audit/sink.js';
import { CurrentBundle, DirectoryWatch, type IdentityReloader } from './auth/identity-reload.js';
import { PeerAuthenticator } from './auth/peer-auth.js';
import type { JwtSignerOptions, PinsOptions } from './config/enforcement-config.js';
import { DEFAULT_TIMING, resolveEnforcement, resolveLimits, type EnforcementOptions, type RelayLimits, type RelayTiming } from './config/limits.js';
import { checkAdminListen, parseListenAddress } from './config/listen.js';
import { checkAdminIds, type AdminSetting } from './config/relay-config.js';
import { withConfigErrors } from './config/config-errors.js';
import { tlsOptionsOf } from './auth/identity-reload.js';
import type { AdminMtls } from './listener/admin.js';
import type { Enforcement } from './enforce/enforcement.js';
import { PolicyError, RelayError } from './errors.js';
import { ConnectorLink, type LinkContext } from './link/connector-link.js';
import { Registry } from './link/registry.js';
import { CATALOG_PATH, handleCatalog, type CatalogContext } from './listener/catalog.js';
import { RENEW_PATH, RenewalCounter, handleRenew, type RenewalOptions } from './listener/renew.js';
import type { EnrollmentSetting, RenewalSetting } from './config/renewal-config.js';
import { handleEnroll } from './listener/enroll.js';
import { FileUsedTokenStore } from '@switchboard/pki';
import { UpgradeRouter, type UpgradeContext } from './listener/upgrade.js';
import { RelayMetrics, type RelayMetricsSnapshot } from './metrics.js';
import type { PolicySnapshot } from './policy/compile.js';
import type { PolicyDocument } from './policy/document.js';
import type { PolicyStore } from './policy/store.js';
import { AgentSession, type SessionContext } from './session/agent-session.js';
import { adminRoutes } from './console/admin-api.js';
import { Observatory } from './console/observatory.js';
import { consoleContext, readAdminToken } from './console/open-console.js';
import { Cleanup } from './wiring/cleanup.js';
import { Tracing, type TracingSetting } from '@switchboard/common/tracing';
import { closeServer, createMainServer, hostForUrl, identityApplier, listenOn, renewOwnIdentity, startAdmin, startEnrollment, watchIdentity } from './wiring/listeners.js';
import { loadRelayIdentity, openAudit, validityProblem, openEnforcement, openEnrollment, openPolicy, openRenewal, readKeyFile } from './wiring/open-parts.js';
import type { PolicyFile, PolicyReloadResult } from './wiring/policy-file.js';

/**
 * RelayOptions configure {@link startRelay}. A {@link RelayConfig} from `loadRelayConfig` is one;
 * tests and embedders can pass parsed objects instead of paths.
 */
export interface RelayOptions {
  /** listen is `host:port` of the main mTLS listener (`127.0.0.1:0` picks a free port). */
  listen: string;
  /**
   * identity is a directory with svid.pem, svid_key.pem and bundle.pem, the SPIFFE Workload API
   * (`{ workloadApi: { endpoint?, id?, hint? } }`), or the loaded identity.
   */
  identity: string | Identity | { workloadApi: WorkloadApiSetting };
  /** policy is a policy.yaml path, a policy document, a compiled snapshot, or a store to share. */
  policy: string | PolicyDocument | PolicySnapshot | PolicyStore;
  /** audit configures the tamper-evident trail (docs/audit.md), or passes any {@link AuditSink} (tests, embedders). */
  audit: RelayAuditOptions | { sink: AuditSink };
  /**
   * admin, when set, starts the loopback admin listener (/healthz, /readyz, /metrics, the console
   * and its API); `tokenFile` (a file holding at least 32 characters) lets the console approve.
   */
  admin?: AdminSetting;
  limits?: Partial<RelayLimits>;
  enforcement?: Partial<EnforcementOptions>;
  /** pins, when set, is the tool pin store file; every server is then pinned `tofu` unless its policy says otherwise. */
  pins?: PinsOptions;
  /** jwtSigner mints JWT-SVIDs for servers with `identityToBackend`: key options, or a signer. */
  jwtSigner?: JwtSignerOptions | JwtSvidSigner;
  /** watchPolicy reloads a policy file when it changes (default true; SIGHUP works either way). */
  watchPolicy?: boolean;
  /** renewal, when set, renews workload SVIDs on `POST /v1/renew` with this issuer (docs/identity.md). */
  renewal?: RenewalSetting;
  /** enrollment, when set, starts the enrollment listener (`POST /v1/enroll`; needs `renewal`). */
  enrollment?: EnrollmentSetting;
  /** tracing, when set, exports OpenTelemetry spans by OTLP (docs/operations.md, "Tracing"); off otherwise. */
  tracing?: TracingSetting;
}

/** StartRelayDeps are the relay's collaborators; all optional. */
export interface StartRelayDeps {
  /** logger receives the relay's logs; the relay is silent without one. */
  logger?: Logger;
  /** timing shortens protocol timers in tests. */
  timing?: Partial<RelayTiming>;
  /** now is the clock certificates are validated against. */
  now?: () => Date;
  /** auditFs is the audit trail's file layer (tests inject one to delay or fail fsync). */
  auditFs?: AuditFs;
}

/** RelayCloseOptions tune {@link Relay.close}. */
export interface RelayCloseOptions {
  /** drainTimeoutMs bounds how long open sessions may finish (default `limits.drainTimeoutMs`). */
  drainTimeoutMs?: number;
}

/** RelayParts is what {@link startRelay} opened, handed to the {@link Relay} that runs it. */
interface RelayParts {
  /** renewal is the issuer in use (swapped in place by reloadIssuer) and the TTL. */
  renewal: RenewalOptions;
  /** issuerDir is renewal.issuer's directory, when it was given as one. */
  issuerDir: string | undefined;
  url: string;
  port: number;
  adminUrl: string | undefined;
  enrollUrl: string | undefined;
  relayId: SpiffeId;
  policy: PolicyStore;
  policyFile: PolicyFile | undefined;
  server: HttpsServer;
  links: Set<ConnectorLink>;
  registry: Registry<ConnectorLink>;
  sockets: Set<Socket>;
  state: ShutdownState;
  metrics: RelayMetrics;
  audit: AuditSink;
  enforcement: Enforcement;
  limits: RelayLimits;
  timing: RelayTiming;
  logger: Logger;
  /** cleanup releases what start opened (admin listener, enforcement, audit trail), newest first. */
  cleanup: Cleanup;
}

interface ShutdownState {
  closing: boolean;
  /** idle is called when the last session ended during a drain. */
  idle?: (() => void) | undefined;
}

/**
 * Relay is a running relay: the main mTLS listener, the connector registry, live sessions, the
 * policy in force and the audit trail. Made by {@link startRelay}.
 */
export class Relay {
  /** url is the main listener's base URL, `wss://host:port`. */
  readonly url: string;
  /** port is the main listener's port (useful with `listen: 127.0.0.1:0`). */
  readonly port: number;
  /** adminUrl is the admin listener's base URL, `http://host:port`, when one was started. */
  readonly adminUrl: string | undefined;
  /** enrollUrl is the enrollment listener's base URL, `https://host:port`, when one was started. */
  readonly enrollUrl: string | undefined;
  /** id is the relay's own SPIFFE ID. */
  readonly id: SpiffeId;
  /** policy is the store holding the policy in force; `relay.reloadPolicy()` re-reads its file. */
  readonly policy: PolicyStore;
  private readonly parts: RelayParts;
  private readonly ticker: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  /** @internal identityReloader swaps the TLS context when the identity files rotate. */
  identityReloader: IdentityReloader | undefined;
  /** @internal ownRenewer renews the relay's own SVID with its issuer, when it does. */
  ownRenewer: IdentityRenewer | undefined;
  private closed: Promise<void> | undefined;

  /** @internal use {@link startRelay}. */
  constructor(parts: RelayParts) {
    this.parts = parts;
    this.url = parts.url;
    this.port = parts.port;
    this.adminUrl = parts.adminUrl;
    this.enrollUrl = parts.enrollUrl;
    this.id = parts.relayId;
    this.policy = parts.policy;
    const { heartbeatIntervalMs, idleTicks } = parts.timing;
    this.ticker = setInterval(heartbeat, heartbeatIntervalMs, parts.links, idleTicks);
    this.ticker.unref();
    this.unsubscribe = this.policy.onSwap((next, previous) => this.policySwapped(next, previous));
  }

  /** metrics returns the current counters and gauges. */
  metrics(): RelayMetricsSnapshot {
    return this.parts.metrics.snapshot();
  }

  /** prometheus renders the metrics as the admin listener's `/metrics` does. */
  prometheus(): Promise<string> {
    return this.parts.metrics.prometheus();
  }

  /** servers lists the servers with at least one connector link online. */
  servers(): string[] {
    return this.parts.registry.servers();
  }

  /**
   * reloadPolicy re-reads the policy file and swaps it in; an invalid file is rejected and the
   * old policy stays in force. The outcome is counted, logged and audited. The CLI calls this on
   * SIGHUP.
   */
  async reloadPolicy(): Promise<PolicyReloadResult> {
    const { policyFile, metrics, logger, audit } = this.parts;
    const result: PolicyReloadResult =
      policyFile === undefined
        ? { ok: false, snapshot: this.policy.current, error: new PolicyError('policy: this policy was not loaded from a file; nothing to reload') }
        : await policyFile.reload();
    if (result.ok) {
      metrics.reloadsOk++;
      logger.info({ source: result.snapshot.source }, 'policy reloaded');
    } else {
      metrics.reloadsFailed++;
      logger.error({ err: result.error.message }, 'policy reload failed; the previous policy stays in force');
    }
    audit.write(await policyReloadRecord(policyFile?.path, result.ok ? null : result.error.message));
    return result;
  }

  /**
   * reloadIssuer re-reads the issuer directory (relay.yaml `renewal.issuer`) and, when it holds
   * another intermediate or bundle, signs every later renewal and enrollment with it: a CA
   * rotation without a restart. The relay then renews its own SVID at once (when it renews
   * itself), so new connections get a certificate of the new issuer; open ones are not touched.
   * An unreadable directory or one for another trust domain is refused, logged, and the current
   * issuer stays. Called when the directory changes and on SIGHUP. Resolves true when it swapped.
   */
  reloadIssuer(): Promise<boolean> {
    // One at a time: the directory watch and SIGHUP may ask together.
    const run = this.issuerReload.then(() => this.swapIssuer());
    this.issuerReload = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private issuerReload: Promise<void> = Promise.resolve();

  private async swapIssuer(): Promise<boolean> {
    const { renewal, issuerDir, logger } = this.parts;
    if (issuerDir === undefined || renewal.issuer === undefined) return false;
    let next: SvidIssuer;
    try {
      next = await SvidIssuer.load(issuerDir);
    } catch (err) {
      logger.warn({ dir: issuerDir, err: err instanceof PkiError ? `${err.code}: ${err.message}` : String(err) }, 'issuer directory does not load; the current issuer stays');
      return false;
    }
    if (next.trustDomain.name !== this.id.trustDomain.name) {
      logger.error({ dir: issuerDir, issuer: next.trustDomain.name }, `the issuer directory serves another trust domain than ${this.id.trustDomain.name}; the current issuer stays`);
      return false;
    }
    const current = renewal.issuer;
    if (current.certificate.fingerprint256 === next.certificate.fingerprint256 && current.bundle.toPem() === next.bundle.toPem()) return false;
    renewal.issuer = next;
    logger.info({ intermediate: next.certificate.serialNumber, expires: new Date(next.certificate.validTo).toISOString(), roots: next.bundle.x509Authorities.length }, 'issuer rotated: renewals and enrollments are signed by the new intermediate');
    if (this.ownRenewer !== undefined) {
      await this.ownRenewer.renewNow().catch((err: Error) => logger.warn({ err: err.message }, 'could not renew the relay SVID with the new issuer; the schedule retries'));
    }
    return true;
  }

  /**
   * approveTools approves the pending tool definitions of `server` (all of them, or `tools`) in
   * the relay's pin store, as `switchboard tools approve` does: audited, written to the pin file,
   * and the server's sessions are told to list again. Returns the approved tools.
   */
  approveTools(server: string, tools?: readonly string[], by = 'api'): { tool: string; hash: string; previousHash: string | null }[] {
    return this.parts.enforcement.pins.approve(server, tools, by).map((e) => ({ tool: e.tool, hash: e.hash, previousHash: e.previousHash ?? null }));
  }

  private policySwapped(next: PolicySnapshot, previous: PolicySnapshot): void {
    // A connector whose grant was removed stops receiving new sessions at once; sessions in
    // progress re-check their agent's rights below.
    for (const link of this.parts.links) {
      const identity = this.policy.identity(link.peer);
      for (const server of link.servers) if (!identity.mayServe(server).allow) link.unregister(server);
    }
    // Revoked identities are closed now (4401); other sessions re-check their grants and hear list_changed.
    this.parts.enforcement.policySwapped(next, previous, this.parts.links);
  }

  /**
   * close shuts the relay down: it stops accepting connections, sends GOAWAY to every connector,
   * lets open sessions finish for up to `drainTimeoutMs`, closes what is left (sessions with
   * 4509, links with 1001), and flushes the audit trail. Idempotent.
   */
  close(options: RelayCloseOptions = {}): Promise<void> {
    this.closed ??= this.shutdown(options.drainTimeoutMs ?? this.parts.limits.drainTimeoutMs);
    return this.closed;
  }

  private async shutdown(drainMs: number): Promise<void> {
    const { logger: log, server, links, sockets, state, metrics } = this.parts;
    state.closing = true;
    this.unsubscribe();
    this.parts.policyFile?.close();
    this.identityReloader?.close();
    log.info({ drainMs, sessions: metrics.sessionsOpen }, 'relay shutting down');
    const serverClosed = closeServer(server);
    for (const link of links) link.goAway();
    if (metrics.sessionsOpen > 0 && drainMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        state.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      state.idle = undefined;
    }
    for (const link of [...links]) link.shutdown(1001, 'relay shutting down');
    server.closeAllConnections();
    // Close handshakes get a moment; then whatever is still connected is cut.
    const grace = setTimeout(() => {
      for (const s of sockets) s.destroy();
    }, 1000);
    await serverClosed;
    clearTimeout(grace);
    clearInterval(this.ticker);
    await this.parts.cleanup.run((what, err) => log.error({ err: (err as Error).message ?? String(err) }, `${what} failed at shutdown`));
    log.info({}, 'relay stopped');
  }
}

function heartbeat(links: Set<ConnectorLink>, idleTicks: number): void {
  for (const link of links) link.tick(idleTicks);
}

/**
 * startRelay starts a relay: it loads the identity and policy, opens the audit trail and the
 * enforcement state, and listens (TLS 1.3, client certificates required and verified against the
 * trust bundle). Resolves once every listener is bound; a failure part way releases what was
 * opened. Throws {@link RelayError}: `RELAY_ERR_CONFIG`, `RELAY_ERR_IDENTITY`, `RELAY_ERR_POLICY`,
 * `RELAY_ERR_AUDIT` or `RELAY_ERR_LISTEN`.
 *
 * @example
 * const relay = await startRelay({
 *   listen: '127.0.0.1:0',
 *   identity: './ids/relay',
 *   policy: './policy.yaml',
 *   audit: { path: './audit.log' },
 * });
 * console.log(relay.url); // wss://127.0.0.1:40123
 * await relay.close();
 */
export async function startRelay(options: RelayOptions, deps: StartRelayDeps = {}): Promise<Relay> {
  const listen = parseListenAddress(options.listen);
  const adminAddr = options.admin ? checkAdminListen(options.admin.listen, options.admin.mtls !== undefined) : undefined;
  if (options.admin?.mtls !== undefined) withConfigErrors(() => checkAdminIds(options.admin?.mtls ?? {}), undefined, undefined);
  const limits = resolveLimits(options.limits);
  const { unknownToolReply, replicas } = resolveEnforcement(options.enforcement);
  const timing: RelayTiming = { ...DEFAULT_TIMING, ...deps.timing };
  const logger = (deps.logger ?? silentLogger).child({ component: 'relay' });
  const cleanup = new Cleanup();
  // Started first, stopped last: the sessions closed at shutdown still get their spans out.
  const tracing = options.tracing === undefined ? Tracing.off : Tracing.start(options.tracing, { serviceName: 'switchboard-relay' });
  if (tracing.enabled) cleanup.add('tracing', () => tracing.shutdown());
  try {
    // From the SPIFFE Workload API, the first identity now and each rotation as the stream delivers it.
    const workloadApi = isWorkloadApiSetting(options.identity) ? await openRelayWorkloadApi(options.identity.workloadApi, logger) : undefined;
    if (workloadApi !== undefined) cleanup.add('workload api', () => workloadApi.close());
    const identity = await loadRelayIdentity(workloadApi?.identity ?? (options.identity as string | Identity));
    const { store: policy, file: policyFile } = await openPolicy(options.policy, identity, logger);
    const renewal = await openRenewal(options.renewal, identity);
    const enrollAddr = options.enrollment ? parseListenAddress(options.enrollment.listen, 'enrollment.listen') : undefined;
    const enrollKeyPem = typeof options.enrollment?.publicKey === 'string' ? await readKeyFile(options.enrollment.publicKey, 'enrollment.publicKey') : undefined;
    const metrics = new RelayMetrics();
    const trail = await openAudit(options.audit, policyFile, metrics, logger, deps.auditFs, cleanup);
    // The console watches every record as it is built: what it shows is what the trail says.
    const observatory = new Observatory({ onRecord: (r) => metrics.recorded(r), onAppended: (seconds) => metrics.auditAppend.observe(seconds) });
    const audit = observatory.tap(trail);
    const tokenDigest = options.admin?.tokenFile === undefined ? undefined : await readAdminToken(options.admin.tokenFile);
    const enforcement = await openEnforcement({ ...options, replicas }, policy, identity.svid.id.trustDomain.name, { audit, metrics, logger });
    cleanup.add('pin store', () => enforcement.close());

    const links = new Set<ConnectorLink>();
    const sockets = new Set<Socket>();
    const state: ShutdownState = { closing: false };
    const registry = new Registry<ConnectorLink>();
    const bundle = new CurrentBundle(identity.bundle);
    const auth = new PeerAuthenticator(bundle, deps.now ? { now: deps.now } : {});
    const shared: LinkContext & SessionContext & UpgradeContext & CatalogContext = {
      limits,
      unknownToolReply,
      timing,
      policy,
      registry,
      enforcement,
      audit,
      metrics,
      logger,
      relayId: identity.svid.id,
      peerAuth: auth,
      pins: enforcement.pins,
      inventory: enforcement.inventory,
      online: () => registry.servers(),
      sessionEnded: () => {
        if (state.closing && metrics.sessionsOpen === 0) state.idle?.();
      },
      linkEnded: (link) => links.delete(link),
      tracing,
    };

    const router = new UpgradeRouter(shared, auth, {
      closing: () => state.closing,
      startSession: (accepted) => new AgentSession({ ctx: shared, ...accepted }).start(),
      startLink: (ws, socket, peer) => {
        const link = new ConnectorLink(shared, ws, socket, peer);
        links.add(link);
        link.start();
      },
    });
    const renewals = new RenewalCounter();
    const server = createMainServer(identity, {
      metrics,
      logger,
      limits,
      sockets,
      routes: {
        [CATALOG_PATH]: (req, res) => handleCatalog(shared, auth, req, res),
        [RENEW_PATH]: (req, res) => handleRenew({ ...shared, renewal }, auth, renewals, req, res),
      },
    });
    server.on('upgrade', (req, socket, head) => router.handleUpgrade(req, socket, head));
    const port = await listenOn(server, listen, 'listen');
    cleanup.add('main listener', () => closeServer(server));
    let enrollUrl: string | undefined;
    let enrollServer: HttpsServer | undefined;
    if (options.enrollment !== undefined && enrollAddr !== undefined) {
      const { verifier, store } = openEnrollment(options.enrollment, renewal, identity, enrollKeyPem);
      if (store instanceof FileUsedTokenStore) cleanup.add('used-token store', () => store.close());
      ({ url: enrollUrl, server: enrollServer } = await startEnrollment(enrollAddr, identity, (req, res) => handleEnroll({ ...shared, renewal, verifier }, req, res), { metrics, logger, limits }, cleanup));
    }
    let adminServer: HttpsServer | undefined;
    const applyIdentity = identityApplier(() => [server, ...(enrollServer ? [enrollServer] : []), ...(adminServer ? [adminServer] : [])], bundle);
    const url = `wss://${hostForUrl(listen.host)}:${port}`;
    const consoleApi = consoleContext({ relayId: identity.svid.id.toString(), url, policy, registry, enforcement, observatory, trail, auditMetrics: () => metrics.audit?.() ?? null, tokenDigest });
    const mtls = options.admin?.mtls;
    const adminMtls: AdminMtls | undefined =
      mtls === undefined
        ? undefined
        : { tls: () => tlsOptionsOf(identity), authenticate: (socket) => auth.authenticate(socket).id, viewers: mtls.viewers.map(parseIdMatcher), admins: mtls.admins.map(parseIdMatcher) };
    let adminUrl: string | undefined;
    if (adminAddr !== undefined) {
      const started = await startAdmin(adminAddr, { ready: () => server.listening && !state.closing && audit.available, metrics, routes: adminRoutes(consoleApi), ...(adminMtls ? { mtls: adminMtls } : {}) }, cleanup);
      adminUrl = started.url;
      if (adminMtls) adminServer = started.server as HttpsServer;
    }

    logger.info({ url, adminUrl, enrollUrl, relay: identity.svid.id.toString() }, 'relay listening');
    const issuerDir = typeof options.renewal?.issuer === 'string' ? options.renewal.issuer : undefined;
    const relay = new Relay({ renewal, issuerDir, url, port, adminUrl, enrollUrl, relayId: identity.svid.id, policy, policyFile, server, links, registry, sockets, state, metrics, audit, enforcement, limits, timing, logger, cleanup });
    if (options.watchPolicy !== false) policyFile?.watch(() => void relay.reloadPolicy());
    workloadApi?.onUpdate((next) => {
      const invalid = validityProblem(next, Date.now());
      if (invalid !== undefined) logger.warn({ problem: invalid }, 'the workload api rotated to an unusable certificate; keeping the current one');
      else applyIdentity(next);
    });
    if (typeof options.identity === 'string') {
      const reloader = watchIdentity(options.identity, identity, applyIdentity, logger);
      relay.identityReloader = reloader;
      // With an issuer, the relay renews its own SVID too: signed here, written to its directory.
      // A read-only directory (a mounted Secret) is renewed from outside: say so once, do not retry forever.
      if (renewal.issuer !== undefined && (await writable(options.identity))) {
        const renewer = renewOwnIdentity(options.identity, renewal, reloader, logger);
        relay.ownRenewer = renewer;
        cleanup.add('identity renewal', () => renewer.stop());
      } else if (renewal.issuer !== undefined) {
        logger.info({ dir: options.identity }, 'the identity directory is read-only: the relay does not renew its own SVID (renew the files from outside)');
      }
    }
    if (issuerDir !== undefined) {
      const watch = new DirectoryWatch(issuerDir, () => void relay.reloadIssuer(), (err) => logger.warn({ err: err.message, dir: issuerDir }, 'cannot watch the issuer directory; reload it with SIGHUP'));
      watch.start();
      cleanup.add('issuer watch', () => watch.close());
    }
    return relay;
  } catch (err) {
    await cleanup.run();
    throw err;
  }
}

/** openRelayWorkloadApi takes the relay's first identity from the SPIFFE Workload API; a failure is `RELAY_ERR_IDENTITY`. */
async function openRelayWorkloadApi(setting: WorkloadApiSetting, logger: Logger): Promise<WorkloadApiSource> {
  try {
    return await WorkloadApiSource.connect({ ...setting, logger: logger.child({ component: 'workload-api' }) });
  } catch (err) {
    const detail = err instanceof PkiError ? `${err.code}: ${err.message}` : String(err);
    throw new RelayError('RELAY_ERR_IDENTITY', `identity: ${detail}`, { cause: err });
  }
}

async function writable(dir: string): Promise<boolean> {
  try {
    await access(dir, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}
