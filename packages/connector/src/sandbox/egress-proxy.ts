import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { lookup } from 'node:dns/promises';
import { connect, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { EgressPolicy } from './egress-rules.js';

/** EgressDenial is one destination a contained server asked for and did not get. */
export interface EgressDenial {
  /** destination is the host as the server named it (a domain or an IP address). */
  destination: string;
  port: number;
  /** reason says which rule refused it. */
  reason: string;
}

/** EgressProxyOptions configure one session's proxy. */
export interface EgressProxyOptions {
  policy: EgressPolicy;
  /** socketPath is where the proxy listens (a unix socket in the session's private directory). */
  socketPath: string;
  onDenied: (denial: EgressDenial) => void;
  /** connectTimeoutMs bounds the connection to an allowed destination (default 10 s). */
  connectTimeoutMs?: number;
}

const CONNECT_TIMEOUT_MS = 10_000;

/**
 * EgressProxy is the only way out of a contained server's network namespace: an HTTP proxy
 * (`CONNECT host:port` for TLS and anything else over TCP, absolute-form requests for plain
 * `http://`) on a unix socket that the sandbox reaches through a loopback port forward. Each
 * destination is decided by the server's egress rules before it is resolved, and again on the
 * addresses it resolves to; a refusal is answered `403` and reported through `onDenied`. The
 * proxy itself (node:http) does the HTTP parsing; it never looks inside a CONNECT tunnel.
 */
export class EgressProxy {
  private readonly server: Server;
  private readonly options: EgressProxyOptions;
  private readonly sockets = new Set<Duplex>();

  private constructor(options: EgressProxyOptions) {
    this.options = options;
    this.server = createServer({ requestTimeout: 0 });
    this.server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => void this.onConnect(req, client, head));
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.onRequest(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  /** listen starts a proxy on `options.socketPath`. */
  static async listen(options: EgressProxyOptions): Promise<EgressProxy> {
    const proxy = new EgressProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(options.socketPath, () => {
        proxy.server.off('error', reject);
        resolve();
      });
    });
    return proxy;
  }

  /** close stops listening and cuts every tunnel. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private deny(destination: string, port: number, reason: string): void {
    this.options.onDenied({ destination, port, reason });
  }

  /** decide resolves an allowed destination to the address to dial, or returns why not. */
  private async decide(host: string, port: number): Promise<{ address: string } | { denied: string }> {
    const byName = this.options.policy.checkName(host, port);
    if (!byName.allow) return { denied: byName.reason };
    const bare = host.replace(/^\[|\]$/g, '');
    if (isIP(bare) !== 0) return { address: bare };
    let addresses: { address: string }[];
    try {
      addresses = await lookup(bare, { all: true, verbatim: true });
    } catch (err) {
      return { denied: `${bare} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
    }
    for (const a of addresses) {
      const d = this.options.policy.checkAddress(a.address, port);
      if (!d.allow) return { denied: d.reason };
    }
    const first = addresses[0];
    return first ? { address: first.address } : { denied: `${bare} has no address` };
  }

  private async onConnect(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    client.on('error', () => client.destroy());
    const target = parseAuthority(req.url ?? '');
    if (!target) {
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const d = await this.decide(target.host, target.port);
    if ('denied' in d) {
      this.deny(target.host, target.port, d.denied);
      client.end(`HTTP/1.1 403 Forbidden\r\nX-Switchboard-Egress: denied\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const upstream = connect({ host: d.address, port: target.port, timeout: this.options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS });
    this.sockets.add(upstream);
    upstream.once('close', () => this.sockets.delete(upstream));
    let connected = false;
    upstream.once('timeout', () => upstream.destroy(new Error('timeout')));
    upstream.once('error', () => {
      if (!connected && client.writable) client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
      else client.destroy();
    });
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
    });
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('egress: absolute http:// URLs only (use CONNECT for https)\n');
      return;
    }
    if (url.protocol !== 'http:') {
      res.writeHead(400).end('egress: absolute http:// URLs only (use CONNECT for https)\n');
      return;
    }
    const port = url.port === '' ? 80 : Number(url.port);
    const host = url.hostname;
    const d = await this.decide(host, port);
    if ('denied' in d) {
      this.deny(host.replace(/^\[|\]$/g, ''), port, d.denied);
      res.writeHead(403, { 'x-switchboard-egress': 'denied', 'content-type': 'text/plain' }).end(`egress denied: ${d.denied}\n`);
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    const upstream = httpRequest({ host: d.address, port, method: req.method, path: `${url.pathname}${url.search}`, headers, setHost: false, timeout: this.options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS });
    upstream.once('response', (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    upstream.once('timeout', () => upstream.destroy(new Error('timeout')));
    upstream.once('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upstream);
  }
}

/** parseAuthority reads a CONNECT target, `host:port` or `[v6]:port`. */
function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s/]+):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port };
}
