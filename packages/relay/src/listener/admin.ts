import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loopbackRefusal } from '@switchboard/common';

/** AdminHandlers supplies what the admin endpoints report. */
export interface AdminHandlers {
  /** ready is true while the main listener is listening, the policy is loaded and no shutdown began. */
  ready(): boolean;
  /** metrics renders the Prometheus text exposition. */
  metrics(): Promise<string>;
  /** routes are further paths (the console and its API), each checking its own method. */
  routes?: Record<string, (req: IncomingMessage, res: ServerResponse) => void>;
}

/**
 * createAdminServer builds the loopback admin listener: `GET /healthz` (200 while the process
 * serves), `GET /readyz` (200 when ready, else 503), `GET /metrics` (Prometheus text) and the
 * `routes` given (the console: `console/admin-api.ts`). A
 * request whose `Host` is not a loopback name on its port, or with a foreign `Origin`, gets 403.
 */
export function createAdminServer(handlers: AdminHandlers): Server {
  const server: Server = createServer((req, res) => {
    // Loopback only, and only by a loopback name: a web page must not read it through DNS rebinding.
    const a = server.address() as AddressInfo;
    const refused = loopbackRefusal(req.headers.host, req.headers.origin, a.port, [a.address]);
    if (refused) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' }).end(refused === 'host' ? 'forbidden: unexpected Host header\n' : 'forbidden: cross-origin request\n');
      return;
    }
    const path = (req.url ?? '').split('?')[0] ?? '';
    const route = handlers.routes?.[path];
    if (route !== undefined && Object.hasOwn(handlers.routes as object, path)) {
      route(req, res);
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
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 5_000;
  return server;
}
