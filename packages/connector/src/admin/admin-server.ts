import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AdminConfig } from '../config.js';
import type { LinkStatus } from '../link/link-status.js';
import { loopbackRefusal } from '@switchboard/common';
import type { ConnectorMetrics } from './metrics.js';

/** AdminSource is what the admin listener reports on. */
export interface AdminSource {
  links(): LinkStatus[];
  counters(): Readonly<Record<string, number>>;
  /** identityHealthy is false when the identity is about to expire and renewal keeps failing. */
  identityHealthy?(): boolean;
}

/**
 * AdminServer is the optional loopback listener: `/healthz` (the process runs), `/readyz` (a link
 * is up with at least one accepted server) and `/metrics` (Prometheus text format). The config
 * refuses non-loopback addresses; nothing here can serve MCP traffic.
 */
export class AdminServer {
  private readonly server: Server;
  private readonly source: AdminSource;
  private readonly metrics: ConnectorMetrics;

  private constructor(source: AdminSource, metrics: ConnectorMetrics) {
    this.source = source;
    this.metrics = metrics;
    this.server = createServer(this.onRequest);
  }

  /** AdminServer.listen binds the loopback address of `config`; `/metrics` renders `metrics`. */
  static async listen(config: AdminConfig, source: AdminSource, metrics: ConnectorMetrics): Promise<AdminServer> {
    const admin = new AdminServer(source, metrics);
    await new Promise<void>((resolve, reject) => {
      admin.server.once('error', reject);
      admin.server.listen(config.port, config.host, () => {
        admin.server.off('error', reject);
        resolve();
      });
    });
    return admin;
  }

  /** address is the bound host and port. */
  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** close stops the listener. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // Loopback only, and only by a loopback name: a web page must not read it through DNS rebinding.
    const refused = loopbackRefusal(req.headers.host, req.headers.origin, this.address.port, [this.address.host]);
    if (refused) return reply(res, 403, refused === 'host' ? 'forbidden: unexpected Host header\n' : 'forbidden: cross-origin request\n');
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed\n');
    if (path === '/healthz') return reply(res, 200, 'ok\n');
    if (path === '/readyz') {
      const up = this.source.links().filter((l) => l.state === 'up');
      if (this.source.identityHealthy?.() === false) return reply(res, 503, 'identity renewal is failing and the certificate expires soon\n');
      return up.length > 0 ? reply(res, 200, 'ready\n') : reply(res, 503, 'no relay link is up\n');
    }
    if (path === '/metrics') {
      this.metrics.text().then(
        (text) => reply(res, 200, text, 'text/plain; version=0.0.4; charset=utf-8'),
        (err: Error) => reply(res, 500, `metrics failed: ${err.message}\n`),
      );
      return;
    }
    reply(res, 404, 'not found\n');
  };
}

function reply(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
