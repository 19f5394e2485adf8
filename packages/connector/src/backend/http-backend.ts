import http, { type IncomingMessage, type RequestOptions } from 'node:http';
import https from 'node:https';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { isJsonRpcMessage, type OpenPayload } from '@switchboard/protocol';
import type { HttpServerConfig } from '../config.js';
import type { Logger } from '@switchboard/common';
import type { BackendSession, BackendSink } from './backend.js';
import { MAX_BACKEND_MESSAGE_BYTES } from './stdio-backend.js';

const TERMINATE_TIMEOUT_MS = 5000;
/** Reconnects of the server's GET stream (and SSE resumptions of a POST) before the session ends: 5, 1 s apart. */
const MAX_STREAM_RETRIES = 5;
const STREAM_RETRY_MS = 1000;
const ACCEPT_BOTH = 'application/json, text/event-stream';

/** One keep-alive agent per scheme for every backend session of this connector: connections are reused. */
const AGENTS = { 'http:': new http.Agent({ keepAlive: true, maxSockets: 256 }), 'https:': new https.Agent({ keepAlive: true, maxSockets: 256 }) } as const;

/**
 * HttpBackend is one MCP session on a Streamable-HTTP server for one agent session, spoken by a
 * lean client on `node:http` with keep-alive connections (docs/performance.md, "Streamable-HTTP
 * backends"): one POST per message (`Accept: application/json, text/event-stream`), a JSON or SSE
 * answer whose messages are forwarded as the bytes the server sent, the `Mcp-Session-Id` from the
 * initialize response on every later request, `MCP-Protocol-Version` once negotiated, the server's
 * own GET stream when it offers one (405: it does not), SSE resumption with `Last-Event-ID` when a
 * stream breaks before its answers came, and DELETE when the agent session ends. It sends the
 * relay's JWT-SVID as a bearer token when there is one and no `authorization` header is
 * configured. A failed request ends the session.
 */
export class HttpBackend implements BackendSession {
  private readonly url: URL;
  private readonly baseHeaders: Record<string, string>;
  private readonly sink: BackendSink;
  private readonly logger: Logger;
  private readonly request: typeof http.request;
  private readonly agent: http.Agent;
  private closing = false;
  private sessionId: string | undefined;
  private protocolVersion: string | undefined;
  private initializeId: RequestId | undefined;
  private getStream: IncomingMessage | undefined;
  private getRetries = 0;

  constructor(config: HttpServerConfig, open: OpenPayload, sink: BackendSink, logger: Logger) {
    this.sink = sink;
    this.logger = logger;
    this.url = new URL(config.url);
    const headers: Record<string, string> = { ...config.headers };
    const hasAuth = Object.keys(headers).some((h) => h.toLowerCase() === 'authorization');
    if (open.jwtSvid && !hasAuth) headers.authorization = `Bearer ${open.jwtSvid}`;
    this.baseHeaders = headers;
    const secure = this.url.protocol === 'https:';
    this.request = secure ? https.request : http.request;
    this.agent = secure ? AGENTS['https:'] : AGENTS['http:'];
  }

  async start(): Promise<void> {
    // Nothing to dial ahead: the first POST (the agent's initialize) opens the MCP session.
  }

  send(message: JSONRPCMessage, bytes: number): void {
    const m = message as { method?: unknown; id?: RequestId };
    if (m.method === 'initialize' && m.id !== undefined) this.initializeId = m.id;
    this.post(JSON.stringify(message), bytes, m.method === 'notifications/initialized');
  }

  sendRaw(data: Buffer): boolean {
    // The relay's bytes go out as the body; only initialize is looked at (for its id).
    if (data.includes('"initialize"')) return false;
    this.post(data, data.length, data.includes('"notifications/initialized"'));
    return true;
  }

  pause(): void {
    // Responses are read as they come; the session's output buffer bounds what piles up.
  }

  resume(): void {}

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.getStream?.destroy();
    if (this.sessionId === undefined) return;
    await new Promise<void>((resolve) => {
      const req = this.request(this.url, { method: 'DELETE', agent: this.agent, headers: this.headers({}), timeout: TERMINATE_TIMEOUT_MS }, (res) => {
        res.resume();
        res.on('end', resolve);
        res.on('error', () => resolve());
      });
      req.on('timeout', () => req.destroy());
      req.on('error', (err) => {
        this.logger.debug({ err: err.message }, 'terminating the backend MCP session failed');
        resolve();
      });
      req.end();
    });
  }

  private headers(extra: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { ...this.baseHeaders, ...extra };
    if (this.sessionId !== undefined) h['mcp-session-id'] = this.sessionId;
    if (this.protocolVersion !== undefined) h['mcp-protocol-version'] = this.protocolVersion;
    return h;
  }

  private post(body: string | Buffer, bytes: number, thenListen: boolean): void {
    if (this.closing) return;
    const opts: RequestOptions = { method: 'POST', agent: this.agent, headers: this.headers({ 'content-type': 'application/json', accept: ACCEPT_BOTH }) };
    const req = this.request(this.url, opts, (res) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status >= 300) {
        res.resume();
        return this.failed(`HTTP ${status}`);
      }
      const sid = res.headers['mcp-session-id'];
      if (typeof sid === 'string' && this.sessionId === undefined) this.sessionId = sid;
      if (!this.closing) this.sink.written(bytes);
      // Initialized: the session is up, the server may now talk unasked on its GET stream.
      if (thenListen) this.listen();
      if (status === 202) return void res.resume();
      const type = String(res.headers['content-type'] ?? '').toLowerCase();
      if (type.startsWith('text/event-stream')) this.readSse(res, 'post');
      else if (type.startsWith('application/json')) this.readJson(res);
      else {
        res.resume();
        this.failed(`unexpected content type ${type || '(none)'}`);
      }
    });
    req.on('error', (err) => this.failed(err.message));
    req.end(body);
  }

  /** listen opens the server's GET stream for messages it sends unasked (405: it offers none). */
  private listen(lastEventId?: string): void {
    if (this.closing || this.getStream !== undefined) return;
    const req = this.request(this.url, { method: 'GET', agent: this.agent, headers: this.headers({ accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }) }, (res) => {
      if (res.statusCode === 405) return void res.resume();
      if (res.statusCode !== 200 || !String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
        res.resume();
        return this.retryListen(lastEventId, `HTTP ${res.statusCode}`);
      }
      this.getStream = res;
      this.getRetries = 0;
      this.readSse(res, 'get');
    });
    req.on('error', (err) => this.retryListen(lastEventId, err.message));
    req.end();
  }

  private retryListen(lastEventId: string | undefined, why: string): void {
    this.getStream = undefined;
    if (this.closing) return;
    if (++this.getRetries > MAX_STREAM_RETRIES) return this.failed(`the server's event stream failed ${MAX_STREAM_RETRIES} times (${why})`);
    setTimeout(() => this.listen(lastEventId), STREAM_RETRY_MS).unref();
  }

  private readJson(res: IncomingMessage): void {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BACKEND_MESSAGE_BYTES) {
        res.destroy();
        this.failed(`a response larger than ${MAX_BACKEND_MESSAGE_BYTES} bytes`);
      } else chunks.push(c);
    });
    res.on('end', () => {
      const text = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8');
      this.deliver(text);
    });
    res.on('error', (err) => this.failed(err.message));
  }

  /**
   * readSse reads a `text/event-stream`: each event's `data` is one JSON-RPC message; `id` is kept
   * for resumption. A POST's stream that breaks before it ended is resumed with a GET and
   * `Last-Event-ID` (the spec's resumption); the server's GET stream is reopened the same way.
   */
  private readSse(res: IncomingMessage, kind: 'post' | 'get'): void {
    res.setEncoding('utf8');
    let buf = '';
    let data: string[] = [];
    let lastId: string | undefined;
    const dispatch = (): void => {
      if (data.length > 0) this.deliver(data.join('\n'));
      data = [];
    };
    res.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_BACKEND_MESSAGE_BYTES) {
        res.destroy();
        return this.failed(`an event larger than ${MAX_BACKEND_MESSAGE_BYTES} bytes`);
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.charCodeAt(nl - 1) === 13 ? buf.slice(0, nl - 1) : buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === '') dispatch();
        else if (line.startsWith('data:')) data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5));
        else if (line.startsWith('id:')) lastId = line.slice(line.charCodeAt(3) === 32 ? 4 : 3);
        // `event:`, `retry:` and comments carry nothing an MCP message needs.
      }
    });
    let over = false;
    const broke = (why: string): void => {
      // 'aborted', 'error' and 'end' may all come for one broken stream: act once.
      if (this.closing || over) return;
      over = true;
      if (kind === 'get') return this.retryListen(lastId, why);
      // A POST's stream cut short: its remaining messages come on a GET from the last event seen.
      if (lastId !== undefined) return this.retryListen(lastId, why);
      this.failed(`the response stream broke (${why})`);
    };
    res.on('end', () => {
      dispatch();
      if (kind === 'get') broke('stream ended');
    });
    res.on('aborted', () => broke('aborted'));
    res.on('error', (err) => broke(err.message));
  }

  /** deliver forwards one JSON body or event: a message as the server's bytes, a batch one by one. */
  private deliver(text: string): void {
    if (this.closing) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.logger.warn({ bytes: text.length }, 'dropped a backend message that is not JSON');
      return;
    }
    if (Array.isArray(parsed)) {
      for (const m of parsed) this.one(m, undefined);
      return;
    }
    this.one(parsed, text);
  }

  private one(m: unknown, json: string | undefined): void {
    if (!isJsonRpcMessage(m)) {
      this.logger.warn({}, 'dropped a backend message that is not JSON-RPC');
      return;
    }
    const msg = m as { id?: RequestId; result?: { protocolVersion?: unknown } };
    if (this.initializeId !== undefined && msg.id === this.initializeId && msg.result !== undefined) {
      this.initializeId = undefined;
      if (typeof msg.result.protocolVersion === 'string') this.protocolVersion = msg.result.protocolVersion;
    }
    this.sink.message(m, json);
  }

  private failed(why: string): void {
    if (this.closing) return;
    this.logger.warn({ err: why }, 'backend HTTP request failed');
    this.closing = true;
    this.getStream?.destroy();
    this.sink.ended(`backend request failed (${why})`);
  }
}
