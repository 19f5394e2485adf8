import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { PkiError } from '@switchboard/pki';
import type { PeerAuthenticator } from '../auth/peer-auth.js';
import type { Inventory } from '../enforce/inventory.js';
import type { PinRuntime } from '../enforce/pin-runtime.js';
import type { PolicyStore } from '../policy/store.js';

/** CatalogContext is what the catalog reads: the policy, which servers are online, what was seen of them. */
export interface CatalogContext {
  readonly policy: PolicyStore;
  /** online lists the servers a connector link serves now. */
  online(): Iterable<string>;
  readonly pins: PinRuntime;
  readonly inventory: Inventory;
}

/** CATALOG_PATH is where the catalog is served on the main (mTLS) listener. */
export const CATALOG_PATH = '/v1/servers';

/** CatalogServer is one entry of `GET /v1/servers`. */
export interface CatalogServer {
  name: string;
  /** online is true while a connector link serves the server. */
  online: boolean;
  zone: string | null;
  labels: Record<string, string>;
  /** tools are the tools the caller may use, from the last tools/list the relay saw; null when none was seen yet. */
  tools: { name: string; title?: string; description?: string }[] | null;
  /** toolsSeenAt is when that list was seen (ISO 8601), or null. */
  toolsSeenAt: string | null;
}

/**
 * handleCatalog answers `GET /v1/servers` on the main listener: the servers the authenticated
 * caller may open a session to (online or not) and, for each, the tools it may use as of the
 * last tools/list the relay saw — pinning applied (drifted tools are not listed), then the
 * caller's policy. A caller who may use nothing gets an empty list; a revoked one 403. The peer
 * is authenticated like an upgrade (X509-SVID rules on top of the TLS handshake).
 */
export function handleCatalog(ctx: CatalogContext, auth: PeerAuthenticator, req: IncomingMessage, res: ServerResponse): void {
  const headers = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { ...headers, allow: 'GET, HEAD' }).end(`${JSON.stringify({ error: 'method not allowed' })}\n`);
    return;
  }
  let peer;
  try {
    peer = auth.authenticate(req.socket as TLSSocket);
  } catch (err) {
    const rule = err instanceof PkiError ? err.code : 'invalid';
    res.writeHead(403, headers).end(`${JSON.stringify({ error: 'the client certificate is not a valid X509-SVID', rule })}\n`);
    return;
  }
  if (ctx.policy.identity(peer).revoked !== undefined) {
    res.writeHead(403, headers).end(`${JSON.stringify({ error: 'this identity has been revoked' })}\n`);
    return;
  }
  const online = new Set(ctx.online());
  const pins = ctx.pins;
  const servers: CatalogServer[] = [];
  for (const server of ctx.policy.current.servers.values()) {
    const scope = ctx.policy.scope(peer, server.name);
    if (!scope.session.allow) continue;
    const seen = ctx.inventory.get(server.name);
    const mode = pins.modeFor(server);
    const tools = seen?.tools.filter((t) => scope.tool(t.name).allow && (mode === undefined || pins.store.isCallable(server.name, t.name, mode)));
    servers.push({
      name: server.name,
      online: online.has(server.name),
      zone: server.zone ?? null,
      labels: { ...server.labels },
      tools: tools === undefined ? null : tools.map((t) => ({ ...t })),
      toolsSeenAt: seen?.seenAt ?? null,
    });
  }
  const body = `${JSON.stringify({ identity: peer.id.toString(), servers })}\n`;
  res.writeHead(200, { ...headers, 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}
