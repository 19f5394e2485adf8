import { CurrentBundle, IdentityReloader, tlsOptionsOf } from './listener/identity-reload.js';
import { once } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { BundleSet, PkiError, loadIdentityFiles, loadJwtSvidSigner, type Identity, type JwtSvidSigner, type SpiffeId } from '@switchboard/pki';
import { pino, type Logger } from 'pino';
import type { AuditFs } from '@switchboard/audit';
import { auditMetricsOf } from './audit/metrics.js';
import { openRelayAudit, policyReloadRecord, type RelayAuditOptions } from './audit/open.js';
import type { AuditSink } from './audit/sink.js';
import {
  checkAdminListen,
  parseListenAddress,
  resolveEnforcement,
  resolveLimits,
  type EnforcementOptions,
  type ListenAddress,
  type RelayLimits,
} from './config.js';
import { RelayError } from './errors.js';
import { createAdminServer } from './listener/admin.js';
import { CATALOG_PATH, handleCatalog } from './listener/catalog.js';
import { PeerAuthenticator } from './listener/peer-auth.js';
import { UpgradeRouter } from './listener/upgrade.js';
import { RelayMetrics, type RelayMetricsSnapshot } from './metrics.js';
import { PolicySnapshot, compilePolicy } from './policy/compile.js';
import { connectorMayServe } from './policy/decide.js';
import type { PolicyDocument } from './policy/document.js';
import { PolicyStore, type PolicyReloadResult } from './policy/store.js';
import { PolicyFileWatcher } from './policy/watch.js';
import { Registry } from './registry.js';
import { GuardRuntime } from './session/guard-runtime.js';
import type { JwtSignerOptions } from './session/guard-config.js';
import { PinRuntime, type PinsOptions } from './session/pin-runtime.js';
import { DEFAULT_TIMING, type RelayContext, type RelayTiming } from './session/context.js';
import type { ConnectorLink } from './session/link.js';

/**
 * RelayOptions configure {@link startRelay}. A {@link RelayConfig} from `loadRelayConfig` is one;
 * tests and embedders can pass parsed objects instead of paths.
 */
export interface RelayOptions {
  /** listen is `host:port` of the main mTLS listener (`127.0.0.1:0` picks a free port). */
  listen: string;
  /** identity is a directory with svid.pem, svid_key.pem and bundle.pem, or the loaded identity. */
  identity: string | Identity;
  /** policy is a policy.yaml path, a policy document, a compiled snapshot, or a store to share. */
  policy: string | PolicyDocument | PolicySnapshot | PolicyStore;
  /** audit configures the tamper-evident trail (docs/audit.md), or passes any {@link AuditSink} (tests, embedders). */
  audit: RelayAuditOptions | { sink: AuditSink };
  /** admin, when set, starts the loopback admin listener (/healthz, /readyz, /metrics). */
  admin?: { listen: string };
  limits?: Partial<RelayLimits>;
  enforcement?: Partial<EnforcementOptions>;
  /** pins, when set, is the tool pin store file; every server is then pinned `tofu` unless its policy says otherwise. */
  pins?: PinsOptions;
  /** jwtSigner mints JWT-SVIDs for servers with `identityToBackend`: key options, or a signer. */
  jwtSigner?: JwtSignerOptions | JwtSvidSigner;
  /** watchPolicy reloads a policy file when it changes (default true; SIGHUP works either way). */
  watchPolicy?: boolean;
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

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

async function listenOn(server: HttpServer | HttpsServer, addr: ListenAddress, what: string): Promise<number> {
  const failed = once(server, 'error');
  server.listen(addr.port, addr.host);
  try {
    await Promise.race([
      once(server, 'listening'),
      failed.then(([err]) => {
        throw err;
      }),
    ]);
  } catch (err) {
    throw new RelayError('RELAY_ERR_LISTEN', `listen: cannot listen on ${what} ${addr.host}:${addr.port}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      cause: err,
      retryable: true,
    });
  }
  failed.catch(() => undefined);
  return (server.address() as AddressInfo).port;
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
  /** id is the relay's own SPIFFE ID. */
  readonly id: SpiffeId;
  /** policy is the store holding the policy in force; `relay.reloadPolicy()` re-reads its file. */
  readonly policy: PolicyStore;
  private readonly ctx: RelayContext;
  private readonly server: HttpsServer;
  private readonly admin: HttpServer | undefined;
  private readonly links: Set<ConnectorLink>;
  private readonly sockets: Set<Socket>;
  private readonly ownsAudit: boolean;
  private readonly ticker: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  private watcher: PolicyFileWatcher | undefined;
  /** @internal identityReloader swaps the TLS context when the identity files rotate. */
  identityReloader: IdentityReloader | undefined;
  private readonly state: { closing: boolean; idle?: () => void };
  private closed: Promise<void> | undefined;

  /** @internal use {@link startRelay}. */
  constructor(init: {
    url: string;
    port: number;
    adminUrl: string | undefined;
    ctx: RelayContext;
    server: HttpsServer;
    admin: HttpServer | undefined;
    links: Set<ConnectorLink>;
    sockets: Set<Socket>;
    ownsAudit: boolean;
    state: { closing: boolean; idle?: () => void };
  }) {
    this.url = init.url;
    this.port = init.port;
    this.adminUrl = init.adminUrl;
    this.ctx = init.ctx;
    this.id = init.ctx.relayId;
    this.policy = init.ctx.policy;
    this.server = init.server;
    this.admin = init.admin;
    this.links = init.links;
    this.sockets = init.sockets;
    this.ownsAudit = init.ownsAudit;
    this.state = init.state;
    const { heartbeatIntervalMs, idleTicks } = init.ctx.timing;
    this.ticker = setInterval(heartbeat, heartbeatIntervalMs, this.links, idleTicks);
    this.ticker.unref();
    this.unsubscribe = this.policy.onSwap((next, previous) => this.policySwapped(next, previous));
  }

  /** @internal startWatch reloads the policy whenever its file changes (debounced). */
  startWatch(path: string): void {
    this.watcher = new PolicyFileWatcher(path, () => void this.reloadPolicy(), {
      currentHash: () => this.policy.lastReadHash,
      onError: (err) => this.ctx.logger.warn({ err: err.message }, 'policy file watch failed; SIGHUP still reloads'),
    });
    try {
      this.watcher.start();
    } catch (err) {
      this.watcher = undefined;
      this.ctx.logger.warn({ err: (err as Error).message, path }, 'cannot watch the policy file; SIGHUP still reloads');
    }
  }

  /** metrics returns the current counters and gauges. */
  metrics(): RelayMetricsSnapshot {
    return this.ctx.metrics.snapshot();
  }

  /** prometheus renders the counters as the admin listener's `/metrics` does. */
  prometheus(): string {
    return this.ctx.metrics.prometheus();
  }

  /** servers lists the servers with at least one connector link online. */
  servers(): string[] {
    return this.ctx.registry.servers();
  }

  /**
   * reloadPolicy re-reads the policy file and swaps it in; an invalid file is rejected and the
   * old policy stays in force. The outcome is counted, logged and audited. The CLI calls this on
   * SIGHUP.
   */
  async reloadPolicy(): Promise<PolicyReloadResult> {
    const result = await this.policy.reload();
    const m = this.ctx.metrics;
    if (result.ok) {
      m.reloadsOk++;
      this.ctx.logger.info({ source: result.snapshot.source }, 'policy reloaded');
    } else {
      m.reloadsFailed++;
      this.ctx.logger.error({ err: result.error.message }, 'policy reload failed; the previous policy stays in force');
    }
    this.ctx.audit.write(await policyReloadRecord(this.policy.sourcePath, result.ok ? null : result.error.message));
    return result;
  }

  /**
   * approveTools approves the pending tool definitions of `server` (all of them, or `tools`) in
   * the relay's pin store, as `switchboard tools approve` does: audited, written to the pin file,
   * and the server's sessions are told to list again. Returns the approved tools.
   */
  approveTools(server: string, tools?: readonly string[], by = 'api'): { tool: string; hash: string; previousHash: string | null }[] {
    return this.ctx.guards.pins.approve(server, tools, by).map((e) => ({ tool: e.tool, hash: e.hash, previousHash: e.previousHash ?? null }));
  }

  private policySwapped(next: PolicySnapshot, previous: PolicySnapshot): void {
    // A connector whose grant was removed stops receiving new sessions at once; sessions in
    // progress re-check their agent's rights at their next message.
    for (const link of this.links) {
      for (const server of link.servers) {
        if (!connectorMayServe(next, link.peer.id, server).allow) link.unregister(server);
      }
    }
    // Revoked identities are closed now (4401); other sessions re-check their grants and hear list_changed.
    this.ctx.guards.policySwapped(next, previous, this.links);
  }

  /**
   * close shuts the relay down: it stops accepting connections, sends GOAWAY to every connector,
   * lets open sessions finish for up to `drainTimeoutMs`, closes what is left (sessions with
   * 4509, links with 1001), and flushes the audit trail. Idempotent.
   */
  close(options: RelayCloseOptions = {}): Promise<void> {
    this.closed ??= this.shutdown(options.drainTimeoutMs ?? this.ctx.limits.drainTimeoutMs);
    return this.closed;
  }

  private async shutdown(drainMs: number): Promise<void> {
    const log = this.ctx.logger;
    this.state.closing = true;
    this.unsubscribe();
    this.watcher?.close();
    this.identityReloader?.close();
    log.info({ drainMs, sessions: this.ctx.metrics.sessionsOpen }, 'relay shutting down');
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const link of this.links) link.goAway();
    if (this.ctx.metrics.sessionsOpen > 0 && drainMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        this.state.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.state.idle = undefined;
    }
    for (const link of [...this.links]) link.shutdown(1001, 'relay shutting down');
    this.server.closeAllConnections();
    // Close handshakes get a moment; then whatever is still connected is cut.
    const grace = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, 1000);
    await serverClosed;
    clearTimeout(grace);
    clearInterval(this.ticker);
    if (this.admin) await new Promise<void>((resolve) => this.admin?.close(() => resolve()));
    await this.ctx.guards.close();
    try {
      if (this.ownsAudit) await this.ctx.audit.close();
      else await this.ctx.audit.flush();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'audit trail could not be flushed');
    }
    log.info('relay stopped');
  }
}

function heartbeat(links: Set<ConnectorLink>, idleTicks: number): void {
  for (const link of links) link.tick(idleTicks);
}

async function resolveIdentity(identity: string | Identity): Promise<Identity> {
  if (typeof identity !== 'string') return identity;
  try {
    return await loadIdentityFiles(identity);
  } catch (err) {
    const detail = err instanceof PkiError ? `${err.code}: ${err.message}` : String(err);
    throw new RelayError('RELAY_ERR_IDENTITY', `identity: cannot load the relay identity from ${identity}: ${detail}`, { cause: err });
  }
}

async function resolvePolicy(policy: RelayOptions['policy']): Promise<PolicyStore> {
  if (policy instanceof PolicyStore) return policy;
  if (policy instanceof PolicySnapshot) return new PolicyStore(policy);
  if (typeof policy === 'string') return PolicyStore.fromFile(policy);
  return new PolicyStore(compilePolicy(policy));
}

/**
 * startRelay starts a relay: it loads the identity and policy, opens the audit trail, and listens
 * (TLS 1.3, client certificates required and verified against the trust bundle). Resolves once
 * every listener is bound. Throws {@link RelayError}: `RELAY_ERR_CONFIG`, `RELAY_ERR_IDENTITY`,
 * `RELAY_ERR_POLICY`, `RELAY_ERR_AUDIT` or `RELAY_ERR_LISTEN`.
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
  const adminAddr = options.admin ? checkAdminListen(options.admin.listen) : undefined;
  const limits = resolveLimits(options.limits);
  const enforcement = resolveEnforcement(options.enforcement);
  const timing: RelayTiming = { ...DEFAULT_TIMING, ...deps.timing };
  const logger = (deps.logger ?? pino({ enabled: false })).child({ component: 'relay' });

  const identity = await resolveIdentity(options.identity);
  const store = await resolvePolicy(options.policy);
  const relayTd = identity.svid.id.trustDomain.name;
  if (store.current.trustDomain.name !== relayTd) {
    throw new RelayError(
      'RELAY_ERR_POLICY',
      `policy: trustDomain is ${store.current.trustDomain.name}, but the relay's identity ${identity.svid.id.toString()} is in ${relayTd}`,
    );
  }

  const metrics = new RelayMetrics();
  const opened = await openRelayAudit(options.audit, {
    logger,
    ...(deps.auditFs ? { fs: deps.auditFs } : {}),
    onFailure: (err) =>
      logger.error({ err: err.message }, 'audit trail failed: every recorded call is refused (-32050) and /readyz reports 503 until the relay is restarted'),
  });
  const audit = opened.sink;
  const ownsAudit = opened.owned;
  metrics.audit = auditMetricsOf(audit);
  // The policy in force at start is recorded like a reload, so the trail says which file governed.
  if (store.sourcePath !== undefined) audit.write(await policyReloadRecord(store.sourcePath, null));

  let guards: GuardRuntime;
  try {
    guards = await openGuards(options, store, relayTd, { audit, metrics, logger });
  } catch (err) {
    if (ownsAudit) await audit.close().catch(() => undefined);
    throw err;
  }

  const links = new Set<ConnectorLink>();
  const sockets = new Set<Socket>();
  const state: { closing: boolean; idle?: () => void } = { closing: false };
  const ctx: RelayContext = {
    limits,
    enforcement,
    policy: store,
    registry: new Registry<ConnectorLink>(),
    audit,
    guards,
    metrics,
    logger,
    relayId: identity.svid.id,
    timing,
    sessionEnded: () => {
      if (state.closing && metrics.sessionsOpen === 0) state.idle?.();
    },
    linkEnded: (link) => {
      links.delete(link);
    },
  };

  // One secure context for every connection (built here, once); TLS 1.3 tickets give resumption.
  const server = createHttpsServer({
    ...tlsOptionsOf(identity),
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: 10_000,
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', (err: Error) => {
    metrics.tlsHandshakeFailures++;
    logger.debug({ err: err.message }, 'TLS handshake failed');
  });
  server.on('request', (req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (path === CATALOG_PATH) {
      handleCatalog(ctx, auth, req, res);
      return;
    }
    const ws = path === '/v1/connector' || path.startsWith('/v1/agent/');
    const status = ws ? 426 : 404;
    res.writeHead(status, { connection: 'close', 'content-type': 'text/plain; charset=utf-8' });
    res.end(ws ? 'this endpoint speaks WebSocket only\n' : 'no such endpoint\n');
  });
  const bundle = new CurrentBundle(identity.bundle);
  const auth = new PeerAuthenticator(bundle, deps.now ? { now: deps.now } : {});
  const router = new UpgradeRouter(ctx, auth, {
    closing: () => state.closing,
    linkStarted: (link) => links.add(link),
  });
  server.on('upgrade', (req, socket, head) => router.handleUpgrade(req, socket, head));

  let port: number;
  try {
    port = await listenOn(server, listen, 'listen');
  } catch (err) {
    await guards.close().catch(() => undefined);
    if (ownsAudit) await audit.close().catch(() => undefined);
    throw err;
  }
  let admin: HttpServer | undefined;
  let adminUrl: string | undefined;
  if (adminAddr) {
    admin = createAdminServer({
      ready: () => server.listening && !state.closing && audit.available,
      metrics: () => metrics.prometheus(),
    });
    try {
      const adminPort = await listenOn(admin, adminAddr, 'admin.listen');
      adminUrl = `http://${hostForUrl(adminAddr.host)}:${adminPort}`;
    } catch (err) {
      server.close();
      await guards.close().catch(() => undefined);
      if (ownsAudit) await audit.close().catch(() => undefined);
      throw err;
    }
  }
  const url = `wss://${hostForUrl(listen.host)}:${port}`;
  logger.info({ url, adminUrl, relay: identity.svid.id.toString() }, 'relay listening');
  const relay = new Relay({ url, port, adminUrl, ctx, server, admin, links, sockets, ownsAudit, state });
  if (options.watchPolicy !== false && store.sourcePath !== undefined) relay.startWatch(store.sourcePath);
  if (typeof options.identity === 'string') {
    // A rotated SVID (or bundle) reaches new connections without a restart.
    relay.identityReloader = new IdentityReloader(options.identity, identity, (next) => {
      server.setSecureContext(tlsOptionsOf(next));
      bundle.set(next.bundle);
    }, logger);
    relay.identityReloader.start();
  }
  return relay;
}

/** openGuards builds the enforcement runtime: pin store, JWT signer (validated), and the policy check that needs it. */
async function openGuards(
  options: RelayOptions,
  store: PolicyStore,
  trustDomain: string,
  deps: { audit: AuditSink; metrics: RelayMetrics; logger: Logger },
): Promise<GuardRuntime> {
  let signer: JwtSvidSigner | undefined;
  let ttl: number | undefined;
  const j = options.jwtSigner;
  if (j !== undefined && 'sign' in j) {
    signer = j;
  } else if (j !== undefined) {
    try {
      signer = await loadJwtSvidSigner(j.key, { trustDomain, ...(j.keyId !== undefined ? { keyId: j.keyId } : {}) });
    } catch (err) {
      const detail = err instanceof PkiError ? `${err.code}: ${err.message}` : String(err);
      throw new RelayError('RELAY_ERR_CONFIG', `config: jwtSigner.key: ${detail}`, { cause: err });
    }
    ttl = j.ttlSeconds;
  }
  const pins = await PinRuntime.open(options.pins, { ...deps, logger: deps.logger.child({ component: 'pins' }) });
  const guards = new GuardRuntime({ policy: store, pins, ...deps, ...(signer ? { signer } : {}), ...(ttl !== undefined ? { jwtTtlSeconds: ttl } : {}) });
  try {
    guards.enforceOn();
  } catch (err) {
    await guards.close();
    throw err;
  }
  return guards;
}
