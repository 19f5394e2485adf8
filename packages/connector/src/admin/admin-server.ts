import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AdminConfig } from '../config.js';
import type { LinkStatus } from '../link/link-status.js';
import { loopbackRefusal } from '@switchboard/common';

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

  private constructor(source: AdminSource) {
    this.source = source;
    this.server = createServer(this.onRequest);
  }

  /** AdminServer.listen binds the loopback address of `config`. */
  static async listen(config: AdminConfig, source: AdminSource): Promise<AdminServer> {
    const admin = new AdminServer(source);
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
    if (path === '/metrics') return reply(res, 200, renderMetrics(this.source), 'text/plain; version=0.0.4; charset=utf-8');
    reply(res, 404, 'not found\n');
  };
}

function reply(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

const COUNTER_HELP: Record<string, string> = {
  sessionsOpened: 'Agent sessions whose backend session started.',
  openFailures: 'OPEN requests answered with OPEN_FAIL.',
  sessionsClosed: 'Agent sessions that ended.',
  backendFailures: 'Backend sessions that failed to start.',
  overflows: 'Sessions closed because their output buffer overflowed.',
  reconnects: 'Links that ended and were redialed.',
  renewals: 'New identities installed: renewals over the relay (POST /v1/renew) and Workload API rotations.',
  relayCertExpiries: "Links replaced because the relay's certificate on them expired (sessions drained, not dropped).",
  egressDenied: 'Destinations refused to contained servers by their egress rules (each reported once per session).',
  renewalFailures: 'Identity renewal attempts a relay did not answer with a new SVID.',
  sessionsDetached: 'Sessions kept after their relay link was lost, waiting to be resumed.',
  sessionsResumed: 'Sessions resumed through a new relay link (the same backend session).',
  resumesRefused: 'Resume attempts refused (unknown or expired session, wrong secret, another agent or server).',
  resumeExpiries: 'Detached sessions closed because no resume came within resume.graceMs.',
};

/** renderMetrics writes the connector's metrics in the Prometheus text exposition format. */
export function renderMetrics(source: AdminSource): string {
  const links = source.links();
  const lines: string[] = [];
  lines.push('# HELP switchboard_connector_link_up Whether the link to a relay is up (1) or not (0).');
  lines.push('# TYPE switchboard_connector_link_up gauge');
  for (const l of links) lines.push(`switchboard_connector_link_up{relay="${escapeLabel(l.relay)}"} ${l.state === 'up' ? 1 : 0}`);
  lines.push('# HELP switchboard_connector_sessions_open Agent sessions open now.');
  lines.push('# TYPE switchboard_connector_sessions_open gauge');
  for (const l of links) lines.push(`switchboard_connector_sessions_open{relay="${escapeLabel(l.relay)}"} ${l.sessions}`);
  for (const [key, value] of Object.entries(source.counters())) {
    const name = `switchboard_connector_${key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`;
    lines.push(`# HELP ${name} ${COUNTER_HELP[key] ?? key}`);
    lines.push(`# TYPE ${name} counter`);
    lines.push(`${name} ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
