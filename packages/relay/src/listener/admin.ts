import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket, TlsOptions } from 'node:tls';
import { loopbackRefusal } from '@switchboard/common';
import { PkiError, type IdMatcher, type SpiffeId } from '@switchboard/pki';

/**
 * AdminCaller is who a request on the admin listener comes from: anyone who can reach the loopback
 * listener, or — on an mTLS listener — the SPIFFE ID of the client certificate, and whether it is
 * listed under `admin.mtls.admins` (approvals) or only `viewers`.
 */
export type AdminCaller = { readonly kind: 'loopback' } | { readonly kind: 'mtls'; readonly id: string; readonly admin: boolean };

/** AdminRoute answers one path; it checks its own method. */
export type AdminRoute = (req: IncomingMessage, res: ServerResponse, caller: AdminCaller) => void;

/** AdminMtls makes the admin listener require a client X509-SVID that a viewer or admin pattern matches. */
export interface AdminMtls {
  /** tls are the server options (the relay's SVID; client certificates required against its bundle). */
  tls: () => TlsOptions;
  /** authenticate validates the client certificate as an X509-SVID and returns its SPIFFE ID (throws otherwise). */
  authenticate(socket: TLSSocket): SpiffeId;
  viewers: readonly IdMatcher[];
  admins: readonly IdMatcher[];
}

/** AdminHandlers supplies what the admin endpoints report. */
export interface AdminHandlers {
  /** ready is true while the main listener is listening, the policy is loaded and no shutdown began. */
  ready(): boolean;
  /** metrics renders the Prometheus text exposition. */
  metrics(): Promise<string>;
  /** routes are further paths (the console and its API), each checking its own method. */
  routes?: Record<string, AdminRoute>;
  /** mtls, when set, serves HTTPS and admits only the viewers and admins it names. */
  mtls?: AdminMtls;
}

function forbidden(res: ServerResponse, text: string): void {
  res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
}

/**
 * callerOf decides who may be served: on loopback, a request whose `Host` is a loopback name on the
 * listener's port and whose `Origin`, if any, is one of those (a web page cannot read it through
 * DNS rebinding); on mTLS, a client SVID a viewer or admin pattern matches, and no `Origin` but the
 * listener's own. Undefined when refused (the 403 is sent).
 */
function callerOf(server: Server | HttpsServer, handlers: AdminHandlers, req: IncomingMessage, res: ServerResponse): AdminCaller | undefined {
  const mtls = handlers.mtls;
  if (mtls === undefined) {
    const a = server.address() as AddressInfo;
    const refused = loopbackRefusal(req.headers.host, req.headers.origin, a.port, [a.address]);
    if (refused) {
      forbidden(res, refused === 'host' ? 'forbidden: unexpected Host header\n' : 'forbidden: cross-origin request\n');
      return undefined;
    }
    return { kind: 'loopback' };
  }
  let id: SpiffeId;
  try {
    id = mtls.authenticate(req.socket as TLSSocket);
  } catch (err) {
    forbidden(res, `forbidden: the client certificate is not a valid X509-SVID (${err instanceof PkiError ? err.code : 'invalid'})\n`);
    return undefined;
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin.toLowerCase() !== `https://${String(req.headers.host ?? '').toLowerCase()}`) {
    forbidden(res, 'forbidden: cross-origin request\n');
    return undefined;
  }
  const admin = mtls.admins.some((m) => m.matches(id));
  if (!admin && !mtls.viewers.some((m) => m.matches(id))) {
    forbidden(res, `forbidden: ${id.toString()} is not listed under admin.mtls.viewers or admin.mtls.admins\n`);
    return undefined;
  }
  return { kind: 'mtls', id: id.toString(), admin };
}

/**
 * createAdminServer builds the admin listener: `GET /healthz` (200 while the process serves),
 * `GET /readyz` (200 when ready, else 503), `GET /metrics` (Prometheus text) and the `routes`
 * given (the console: `console/admin-api.ts`). Plain HTTP on loopback by default; HTTPS with
 * client SVIDs with `mtls`. Who may be served: {@link callerOf}.
 */
export function createAdminServer(handlers: AdminHandlers): Server | HttpsServer {
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const caller = callerOf(server, handlers, req, res);
    if (caller === undefined) return;
    const path = (req.url ?? '').split('?')[0] ?? '';
    const route = handlers.routes?.[path];
    if (route !== undefined && Object.hasOwn(handlers.routes as object, path)) {
      route(req, res, caller);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    switch (path) {
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok\n');
        return;
      case '/readyz': {
        const ok = handlers.ready();
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(ok ? 'ready\n' : 'not ready\n');
        return;
      }
      case '/metrics':
        handlers.metrics().then(
          (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text),
          (err: Error) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${err.message}\n`),
        );
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
    }
  };
  const server: Server | HttpsServer =
    handlers.mtls === undefined ? createServer(onRequest) : createHttpsServer({ ...handlers.mtls.tls(), requestCert: true, rejectUnauthorized: true, handshakeTimeout: 5_000 }, onRequest);
  server.headersTimeout = 5_000;
  server.requestTimeout = 5_000;
  return server;
}
