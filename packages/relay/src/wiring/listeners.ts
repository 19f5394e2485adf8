import { once } from 'node:events';
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '@switchboard/common';
import { createPublicKey } from 'node:crypto';
import { TrustBundle, X509Svid, newP256Key, writeIdentityFiles, type Identity, type SvidIssuer } from '@switchboard/pki';
import { IdentityRenewer } from '@switchboard/protocol';
import { CurrentBundle, IdentityReloader, tlsOptionsOf } from '../auth/identity-reload.js';
import type { RelayLimits } from '../config/limits.js';
import type { ListenAddress } from '../config/listen.js';
import { ConnectionGuard } from '../listener/connection-guard.js';
import { RelayError } from '../errors.js';
import { createAdminServer, type AdminHandlers, type AdminMtls } from '../listener/admin.js';
import type { RelayMetrics } from '../metrics.js';
import type { Cleanup } from './cleanup.js';

/** listenOn binds `server` to `addr` and resolves with the bound port; throws `RELAY_ERR_LISTEN` naming `what`. */
export async function listenOn(server: HttpServer | HttpsServer, addr: ListenAddress, what: string): Promise<number> {
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

/** hostForUrl writes a listen host as it goes into a URL (a wildcard as localhost, IPv6 bracketed). */
export function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

/** closeServer stops `server` accepting and resolves once its connections are gone. */
export function closeServer(server: HttpServer | HttpsServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** guardListener puts the connection caps of `limits` on a public listener and reports its gauges. */
function guardListener(server: HttpsServer, limits: RelayLimits, metrics: RelayMetrics, logger: Logger, which: 'main' | 'enrollment'): ConnectionGuard {
  const timer = metrics.handshakes.labels(which);
  const guard = new ConnectionGuard(limits, { connectionsDropped: metrics.connectionsDropped, handshake: (seconds) => timer.observe(seconds) }, logger.child({ listener: which }));
  guard.attach(server);
  metrics.guards[which] = guard;
  return guard;
}

/**
 * createMainServer builds the main listener: one secure context for every connection (built
 * here, once; TLS 1.3 tickets give resumption), client certificates required, the connection
 * caps of `limits` ({@link ConnectionGuard}), the HTTP `routes` (`/v1/servers`, `/v1/renew`) and
 * 426/404 for everything else that is not a WebSocket upgrade.
 */
export function createMainServer(
  identity: Identity,
  deps: { metrics: RelayMetrics; logger: Logger; limits: RelayLimits; sockets: Set<Socket>; routes: Readonly<Record<string, (req: IncomingMessage, res: ServerResponse) => void>> },
): HttpsServer {
  const server = createHttpsServer({
    ...tlsOptionsOf(identity),
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: deps.limits.handshakeTimeoutMs,
  });
  guardListener(server, deps.limits, deps.metrics, deps.logger, 'main');
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  server.on('secureConnection', (socket: TLSSocket) => {
    deps.sockets.add(socket);
    socket.once('close', () => deps.sockets.delete(socket));
  });
  server.on('tlsClientError', (err: Error) => {
    deps.metrics.tlsHandshakeFailures++;
    deps.logger.debug({ err: err.message }, 'TLS handshake failed');
  });
  server.on('request', (req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const route = Object.hasOwn(deps.routes, path) ? deps.routes[path] : undefined;
    if (route !== undefined) {
      route(req, res);
      return;
    }
    const ws = path === '/v1/connector' || path.startsWith('/v1/agent/');
    const status = ws ? 426 : 404;
    res.writeHead(status, { connection: 'close', 'content-type': 'text/plain; charset=utf-8' });
    res.end(ws ? 'this endpoint speaks WebSocket only\n' : 'no such endpoint\n');
  });
  return server;
}

/**
 * startEnrollment starts the enrollment listener: TLS with the relay's certificate and no client
 * certificate (the caller has no SVID yet; the enrollment token is its credential), one route.
 * Returns its URL.
 */
export async function startEnrollment(
  addr: ListenAddress,
  identity: Identity,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  deps: { metrics: RelayMetrics; logger: Logger; limits: RelayLimits },
  cleanup: Cleanup,
): Promise<{ url: string; server: HttpsServer }> {
  const server = createHttpsServer({ ...tlsOptionsOf(identity), requestCert: false, handshakeTimeout: deps.limits.handshakeTimeoutMs });
  guardListener(server, deps.limits, deps.metrics, deps.logger, 'enrollment');
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  server.on('request', handler);
  const port = await listenOn(server, addr, 'enrollment.listen');
  cleanup.add('enrollment listener', async () => {
    server.closeAllConnections();
    await closeServer(server);
  });
  return { url: `https://${hostForUrl(addr.host)}:${port}`, server };
}

/**
 * startAdmin starts the admin listener (loopback HTTP, or HTTPS with client SVIDs when `mtls` is
 * given) and returns its URL and server (an mTLS one rotates with the relay's identity).
 */
export async function startAdmin(
  addr: ListenAddress,
  deps: { ready: () => boolean; metrics: RelayMetrics; routes?: AdminHandlers['routes']; mtls?: AdminMtls },
  cleanup: Cleanup,
): Promise<{ url: string; server: HttpServer | HttpsServer }> {
  const admin = createAdminServer({ ready: deps.ready, metrics: () => deps.metrics.prometheus(), ...(deps.routes ? { routes: deps.routes } : {}), ...(deps.mtls ? { mtls: deps.mtls } : {}) });
  const port = await listenOn(admin, addr, 'admin.listen');
  cleanup.add('admin listener', async () => {
    admin.closeAllConnections();
    await closeServer(admin);
  });
  return { url: `${deps.mtls ? 'https' : 'http'}://${hostForUrl(addr.host)}:${port}`, server: admin };
}

/**
 * renewOwnIdentity renews the relay's own SVID with its issuer at half its lifetime (jitter,
 * backoff: {@link IdentityRenewer}): a fresh key, signed here, written to the identity directory,
 * and applied through the reloader like any rotation of the files.
 */
export function renewOwnIdentity(dir: string, renewal: { readonly issuer: SvidIssuer | undefined; readonly ttlSeconds: number }, reloader: IdentityReloader, logger: Logger): IdentityRenewer {
  return new IdentityRenewer({
    current: () => reloader.identity,
    renew: async (current) => {
      // The issuer in use now: a reloaded issuer (a CA rotation) signs the next renewal.
      const issuer = renewal.issuer;
      if (issuer === undefined) throw new Error('the relay holds no issuer');
      const key = newP256Key();
      const chain = await issuer.sign(current.svid.id, createPublicKey(key), { ttlSeconds: renewal.ttlSeconds });
      const bundle = new TrustBundle({ trustDomain: issuer.trustDomain, x509Authorities: issuer.bundle.x509Authorities, jwtAuthorities: current.bundle.jwtAuthorities.values() });
      return { svid: new X509Svid(current.svid.id, chain, key), bundle };
    },
    install: async (next) => {
      await writeIdentityFiles(dir, next, { force: true });
      if (!(await reloader.reload())) throw new Error('the renewed identity files were not applied');
    },
    logger,
  }).start();
}

/** watchIdentity rotates the relay's SVID (and bundle) for new connections when its files change, without a restart. */
export function watchIdentity(dir: string, identity: Identity, apply: (next: Identity) => void, logger: Logger): IdentityReloader {
  const reloader = new IdentityReloader(dir, identity, apply, logger);
  reloader.start();
  return reloader;
}

/**
 * identityApplier is the one place a new relay identity goes into use: the main listener's and
 * the enrollment listener's TLS context (for new connections) and the bundle peers are checked
 * against. Open connections keep the context they were accepted with.
 */
export function identityApplier(servers: () => readonly HttpsServer[], bundle: CurrentBundle): (next: Identity) => void {
  return (next) => {
    for (const server of servers()) server.setSecureContext(tlsOptionsOf(next));
    bundle.set(next.bundle);
  };
}
