import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { PkiError } from '@switchboard/pki';
import { explainToolDecision } from '../policy/explain.js';
import type { PolicyStore } from '../policy/store.js';
import { inventoryOf, type AuditView, type InventorySources, type RelayInventory } from './inventory-view.js';
import type { ConsoleEvent, Observatory } from './observatory.js';
import type { AdminCaller } from '../listener/admin.js';

/**
 * The admin listener's console and its API (docs/operations.md, "The console"):
 *
 * | route | what |
 * |---|---|
 * | `GET /console/` | the web console (static files shipped in this package) |
 * | `GET /v1/inventory` | servers, tools with pin state, live sessions, audit health, policy ({@link RelayInventory}) |
 * | `GET /v1/events` | the live stream of decisions and denials (server-sent events; `Last-Event-ID` resumes) |
 * | `GET /v1/explain?agent=&server=&tool=` | which rule decides, as `policy check --explain` |
 * | `POST /v1/audit/verify` | verifies the relay's own trail now |
 * | `POST /v1/tools/approve` | approves pending definitions; needs the admin token |
 *
 * Every answer carries names, hashes and summaries only: never arguments, results or secrets.
 */

/** AdminApiContext is what the API reads and changes. */
export interface AdminApiContext extends InventorySources {
  policy: PolicyStore;
  observatory: Observatory;
  /** approve approves pending definitions, audited with `by` (as `tools approve` does). */
  approve(server: string, tools: readonly string[] | undefined, by: string): { tool: string; hash: string; previousHash: string | null }[];
  /** verify verifies the relay's own trail; null when the sink is not a trail. */
  verify(): Promise<AuditView['lastVerify']>;
  /** tokenDigest is the SHA-256 of the admin token, when one is configured (approvals on). */
  tokenDigest: Buffer | undefined;
}

/** MAX_EVENT_STREAMS bounds the server-sent event streams open at once. */
export const MAX_EVENT_STREAMS = 32;
const MAX_BODY = 16 * 1024;
const STREAM_BACKLOG = 100;
const HEARTBEAT_MS = 15_000;

const CONSOLE_DIR = fileURLToPath(new URL('../../console/', import.meta.url));
const STATIC: Record<string, { file: string; type: string }> = {
  '/console/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};
// The page loads only its own files: no inline script, no other origin, no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

type Handler = (req: IncomingMessage, res: ServerResponse, caller: AdminCaller) => void;

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) }).end(text);
}

function only(method: 'GET' | 'POST', h: Handler): Handler {
  return (req, res, caller) => {
    const ok = method === 'GET' ? req.method === 'GET' || req.method === 'HEAD' : req.method === 'POST';
    if (!ok) {
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: method === 'GET' ? 'GET, HEAD' : 'POST' }).end('method not allowed\n');
      return;
    }
    h(req, res, caller);
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** tokenMatches compares a bearer token with the configured one in constant time. */
function tokenMatches(header: string | undefined, digest: Buffer): boolean {
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header ?? '');
  if (m === null) return false;
  return timingSafeEqual(createHash('sha256').update(m[1] as string).digest(), digest);
}

/** sse writes one server-sent event. */
function sse(res: ServerResponse, e: ConsoleEvent): void {
  res.write(`id: ${e.id}\nevent: audit\ndata: ${JSON.stringify(e)}\n\n`);
}

/** AdminAccess tells the page who it is serving and how this caller may approve. */
export interface AdminAccess {
  via: 'loopback' | 'mtls';
  /** id is the caller's SPIFFE ID on the mTLS listener, null on loopback. */
  id: string | null;
  /** approve: with the admin token (loopback), as this identity (an mTLS admin), or not at all. */
  approve: 'token' | 'identity' | 'no';
}

function accessOf(ctx: AdminApiContext, caller: AdminCaller): AdminAccess {
  if (caller.kind === 'mtls') return { via: 'mtls', id: caller.id, approve: caller.admin ? 'identity' : 'no' };
  return { via: 'loopback', id: null, approve: ctx.tokenDigest === undefined ? 'no' : 'token' };
}

/** adminRoutes returns the console's routes for the admin listener. */
export function adminRoutes(ctx: AdminApiContext): Record<string, Handler> {
  let streams = 0;
  const routes: Record<string, Handler> = {
    '/': only('GET', (_req, res) => {
      res.writeHead(302, { location: '/console/' }).end();
    }),
    '/v1/inventory': only('GET', (_req, res, caller) => json(res, 200, { ...inventoryOf(ctx), access: accessOf(ctx, caller) })),
    '/v1/events': only('GET', (req, res) => {
      if (streams >= MAX_EVENT_STREAMS) {
        json(res, 503, { error: `too many event streams open (at most ${MAX_EVENT_STREAMS})` });
        return;
      }
      streams++;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.flushHeaders();
      const last = Number(req.headers['last-event-id'] ?? 0);
      for (const e of ctx.observatory.recent(STREAM_BACKLOG, Number.isSafeInteger(last) && last > 0 ? last : 0)) sse(res, e);
      const unsubscribe = ctx.observatory.subscribe((e) => sse(res, e));
      const beat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
      beat.unref();
      const end = (): void => {
        unsubscribe();
        clearInterval(beat);
        streams--;
      };
      res.once('close', end);
    }),
    '/v1/explain': only('GET', (req, res) => {
      const q = new URL(req.url ?? '/', 'http://admin').searchParams;
      const agent = q.get('agent');
      const server = q.get('server');
      const tool = q.get('tool');
      if (!agent || !server || !tool) {
        json(res, 400, { error: 'explain needs agent, server and tool query parameters' });
        return;
      }
      try {
        json(res, 200, explainToolDecision(ctx.policy.current, agent, server, tool));
      } catch (err) {
        json(res, 400, { error: err instanceof PkiError ? `agent: ${err.message}` : String(err) });
      }
    }),
    '/v1/audit/verify': only('POST', (_req, res) => {
      ctx.verify().then(
        (r) => (r === null ? json(res, 409, { error: 'the relay writes no audit trail file to verify' }) : json(res, 200, r)),
        (err: Error) => json(res, 500, { error: `verify failed: ${err.message}` }),
      );
    }),
    '/v1/tools/approve': only('POST', (req, res, caller) => {
      let by: string;
      if (caller.kind === 'mtls') {
        // On the mTLS listener the client certificate is the credential: admins approve, viewers do not.
        if (!caller.admin) {
          json(res, 403, { error: `${caller.id} may read but not approve: it is not listed under admin.mtls.admins` });
          return;
        }
        by = caller.id;
      } else {
        if (ctx.tokenDigest === undefined) {
          json(res, 403, { error: 'approvals from the console are off: set admin.tokenFile in relay.yaml (or use `switchboard tools approve`)' });
          return;
        }
        if (!tokenMatches(req.headers.authorization, ctx.tokenDigest)) {
          res.setHeader('www-authenticate', 'Bearer realm="switchboard-admin"');
          json(res, 401, { error: 'approving needs the admin token (Authorization: Bearer <token>)' });
          return;
        }
        by = 'console (admin token)';
      }
      readBody(req).then(
        (text) => {
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            json(res, 400, { error: 'the body must be JSON: {"server": "<name>", "tools": ["<tool>", …]}' });
            return;
          }
          const b = body as { server?: unknown; tools?: unknown };
          const keys = typeof body === 'object' && body !== null && !Array.isArray(body) ? Object.keys(body) : null;
          const unknown = keys?.find((k) => k !== 'server' && k !== 'tools');
          if (keys === null || unknown !== undefined || typeof b.server !== 'string' || (b.tools !== undefined && (!Array.isArray(b.tools) || !b.tools.every((t) => typeof t === 'string')))) {
            json(res, 400, { error: unknown !== undefined ? `unknown key "${unknown}"` : 'the body must be {"server": "<name>", "tools": ["<tool>", …]} (tools optional: all pending)' });
            return;
          }
          const tools = b.tools as string[] | undefined;
          const approved = ctx.approve(b.server, tools !== undefined && tools.length > 0 ? tools : undefined, by);
          if (approved.length === 0) {
            json(res, 409, { error: `nothing pending for ${b.server}${tools?.length ? ` (${tools.join(', ')})` : ''}` });
            return;
          }
          json(res, 200, { server: b.server, approved });
        },
        () => json(res, 413, { error: `the body is larger than ${MAX_BODY} bytes` }),
      );
    }),
  };
  for (const [path, { file, type }] of Object.entries(STATIC)) {
    routes[path] = only('GET', (_req, res) => {
      readFile(`${CONSOLE_DIR}${file}`).then(
        (data) => {
          res.writeHead(200, { 'content-type': type, 'content-length': data.length, 'cache-control': 'no-cache', 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' }).end(data);
        },
        () => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('console files missing from the relay package\n'),
      );
    });
  }
  return routes;
}
