import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { SpiffeId } from '@switchboard/pki';
import type { EnrollSetting } from '@switchboard/protocol';
import { AgentError } from '../errors.js';
import { AgentIdentity, type AgentIdentitySpec } from '../identity.js';
import { openIdentity, relayList } from './stdio.js';
import { loopbackRefusal, silentLogger, type Logger } from '@switchboard/common';
import { RelayClientTransport } from '../relay-client-transport.js';

const MAX_BODY_BYTES = 1024 * 1024;

/** HttpBridgeOptions configure {@link startHttpBridge}. */
export interface HttpBridgeOptions {
  /** listen is a loopback `host:port` (`127.0.0.1:7000`, `[::1]:7000`, `localhost:7000`); port 0 picks one. */
  listen: string;
  /** relay is the relay's base URL, or several: each session opens on the first that accepts it. */
  relay: string | URL | readonly (string | URL)[];
  server: string;
  /** identity is an identity directory, `{ workloadApi: { endpoint? } }` (the SPIFFE Workload API), or an identity in memory. */
  identity: AgentIdentitySpec;
  relayId?: string | SpiffeId;
  /** enroll gets the first identity into an empty identity directory with a single-use token. */
  enroll?: EnrollSetting;
  /** path is the MCP endpoint path (default `/mcp`). */
  path?: string;
  logger?: Logger;
  handshakeTimeoutMs?: number;
  /**
   * renew renews an identity read from a directory over the relay at half its lifetime: every new
   * session dials with the newest SVID, every live one moves to it in place (default on).
   */
  renew?: boolean;
}

/** HttpBridge is a running `agent http` endpoint. */
export interface HttpBridge {
  /** url is the MCP endpoint, e.g. `http://127.0.0.1:7000/mcp`. */
  readonly url: string;
  /** sessions is the number of MCP sessions open (one relay session each). */
  sessions(): number;
  /** close ends every session and stops listening. */
  close(): Promise<void>;
}

interface Pair {
  http: StreamableHTTPServerTransport;
  relay: RelayClientTransport;
}

/**
 * startHttpBridge serves a loopback Streamable-HTTP MCP endpoint for clients that only speak HTTP;
 * each MCP session it accepts is one relay session. It binds loopback only and refuses requests
 * whose `Host` is not the endpoint's or that carry a foreign `Origin`, so a web page cannot use the
 * agent's identity (DNS rebinding, cross-site requests).
 *
 * @example
 * const bridge = await startHttpBridge({ listen: '127.0.0.1:7000', relay, server: 'crm', identity: './ids/me' });
 * console.log(bridge.url); // http://127.0.0.1:7000/mcp
 */
export async function startHttpBridge(options: HttpBridgeOptions): Promise<HttpBridge> {
  const { host, port } = parseLoopbackListen(options.listen);
  const logger = (options.logger ?? silentLogger).child({ component: 'agent-http', server: options.server });
  const identity = await openIdentity(options, logger);
  const owned = !(options.identity instanceof AgentIdentity);
  const bridge = new HttpBridgeImpl(options, identity, logger, owned);
  try {
    // Validate relay URL and server name now (TypeError), not on the first request.
    new RelayClientTransport({ relay: options.relay, server: options.server, identity, ...(options.relayId !== undefined ? { relayId: options.relayId } : {}) });
    await bridge.listen(host, port);
  } catch (err) {
    if (owned) await identity.close();
    throw err;
  }
  if (typeof options.identity === 'string' && options.renew !== false) {
    identity.startRenewal(relayList(options.relay), { ...(options.relayId !== undefined ? { relayId: options.relayId } : {}), logger });
    bridge.renewing = true;
  }
  return bridge;
}

class HttpBridgeImpl implements HttpBridge {
  private readonly server: Server;
  private readonly pairs = new Map<string, Pair>();
  private readonly pending = new Set<Pair>();
  private readonly path: string;
  /** renewing is true when this bridge started the identity's renewal (and so stops it). */
  renewing = false;
  /** host and port are where the bridge listens (the Host and Origin a request may name, with the loopback names). */
  private host = '';
  private port = 0;
  url = '';

  constructor(
    private readonly options: HttpBridgeOptions,
    private readonly identity: AgentIdentity,
    private readonly logger: Logger,
    /** owned is true when the bridge opened the identity (and so closes it: renewal, Workload API stream). */
    private readonly owned: boolean,
  ) {
    this.path = options.path ?? '/mcp';
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.logger.error({ err: (err as Error).message }, 'request failed');
        if (!res.headersSent) rpcError(res, 500, -32603, 'internal error');
      });
    });
  }

  async listen(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const bound = (this.server.address() as AddressInfo).port;
    const hostPart = isIP(host) === 6 ? `[${host}]` : host;
    this.url = `http://${hostPart}:${bound}${this.path}`;
    this.host = host;
    this.port = bound;
    this.logger.info({ url: this.url }, 'listening');
  }

  sessions(): number {
    return this.pairs.size;
  }

  async close(): Promise<void> {
    if (this.renewing) await this.identity.stopRenewal();
    if (this.owned) await this.identity.close();
    const all = [...this.pairs.values(), ...this.pending];
    this.pairs.clear();
    await Promise.all(all.map((p) => Promise.all([p.relay.close(), p.http.close()])));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const refused = loopbackRefusal(req.headers.host, req.headers.origin, this.port, [this.host]);
    if (refused === 'host') return rpcError(res, 403, -32000, 'forbidden: unexpected Host header');
    if (refused === 'origin') return rpcError(res, 403, -32000, 'forbidden: cross-origin request');
    if ((req.url ?? '').split('?')[0] !== this.path) return rpcError(res, 404, -32000, 'not found');
    const sid = req.headers['mcp-session-id'];
    if (typeof sid === 'string') {
      const pair = this.pairs.get(sid);
      if (!pair) return rpcError(res, 404, -32001, 'session not found');
      return pair.http.handleRequest(req, res);
    }
    if (req.method !== 'POST') return rpcError(res, 400, -32000, 'bad request: no session; send initialize first');
    const body = await readJson(req);
    if (body === undefined) return rpcError(res, 400, -32700, 'parse error');
    if (!isInitializeRequest(body)) return rpcError(res, 400, -32000, 'bad request: no session; send initialize first');
    await this.open(req, res, body);
  }

  private async open(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    const relay = new RelayClientTransport({
      relay: this.options.relay,
      server: this.options.server,
      identity: this.identity,
      ...(this.options.relayId !== undefined ? { relayId: this.options.relayId } : {}),
      ...(this.options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: this.options.handshakeTimeoutMs } : {}),
    });
    try {
      await relay.start();
    } catch (err) {
      const e = err instanceof AgentError ? err : new AgentError('AGENT_ERR_HANDSHAKE', String(err));
      this.logger.warn({ code: e.code, err: e.message }, 'relay refused the session');
      const status = e.code === 'AGENT_ERR_ACCESS_DENIED' ? 403 : e.code === 'AGENT_ERR_NO_CONNECTOR' ? 503 : 502;
      return rpcError(res, status, -32000, `${e.code}: ${e.message}`, (body as { id?: unknown }).id);
    }
    const pair: Pair = {
      relay,
      http: new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (id) => {
          this.pending.delete(pair);
          this.pairs.set(id, pair);
        },
        onsessionclosed: (id) => {
          this.pairs.delete(id);
          void relay.close();
        },
      }),
    };
    this.pending.add(pair);
    pair.http.onmessage = (m: JSONRPCMessage) => void relay.send(m).catch(() => undefined);
    relay.onmessage = (m: JSONRPCMessage) => void pair.http.send(m).catch((err: unknown) => this.logger.debug({ err: (err as Error).message }, 'reply not delivered'));
    relay.onerror = (err) => this.logger.warn({ err: err.message }, 'relay session error');
    relay.onclose = () => {
      this.pending.delete(pair);
      if (pair.http.sessionId) this.pairs.delete(pair.http.sessionId);
      void pair.http.close();
    };
    pair.http.onclose = () => void relay.close();
    await pair.http.start();
    await pair.http.handleRequest(req, res, body);
  }
}

/** parseLoopbackListen reads `host:port` and refuses any host that is not loopback. */
export function parseLoopbackListen(listen: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  if (!m) throw new TypeError(`agent: --listen ${JSON.stringify(listen)} must be host:port, e.g. 127.0.0.1:7000`);
  const raw = (m[1] as string).replace(/^\[|\]$/g, '');
  const port = Number(m[2]);
  if (port > 65535) throw new TypeError(`agent: port ${port} is out of range`);
  const loopback = raw === 'localhost' || (isIP(raw) === 4 && raw.startsWith('127.')) || raw === '::1';
  if (!loopback) throw new TypeError(`agent: --listen ${raw} is not a loopback address; the HTTP bridge binds loopback only`);
  return { host: raw === 'localhost' ? '127.0.0.1' : raw, port };
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.destroy();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        resolve(undefined);
      }
    });
    req.on('error', () => resolve(undefined));
  });
}

function rpcError(res: ServerResponse, status: number, code: number, message: string, id: unknown = null): void {
  const body = JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: typeof id === 'string' || typeof id === 'number' ? id : null });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
