import { setMaxListeners } from 'node:events';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { OpenPayload } from '@switchboard/protocol';
import type { HttpServerConfig } from '../config.js';
import type { Logger } from '@switchboard/common';
import type { BackendSession, BackendSink } from './backend.js';

const TERMINATE_TIMEOUT_MS = 5000;

/**
 * HttpBackend is one MCP session on a Streamable-HTTP server for one agent session, through the
 * SDK's `StreamableHTTPClientTransport` used as a raw message pipe. It watches the `initialize`
 * exchange only to tell the transport the negotiated protocol version (the header the spec asks
 * for), sends the relay's JWT-SVID as a bearer token when there is one and no `authorization`
 * header is configured, and terminates the MCP session (HTTP DELETE) when the agent session ends.
 * A failed HTTP request ends the session.
 */
export class HttpBackend implements BackendSession {
  private readonly transport: StreamableHTTPClientTransport;
  private readonly sink: BackendSink;
  private readonly logger: Logger;
  private closing = false;
  private initializeId: RequestId | undefined;

  constructor(config: HttpServerConfig, open: OpenPayload, sink: BackendSink, logger: Logger) {
    this.sink = sink;
    this.logger = logger;
    const headers: Record<string, string> = { ...config.headers };
    const hasAuth = Object.keys(headers).some((h) => h.toLowerCase() === 'authorization');
    if (open.jwtSvid && !hasAuth) headers.authorization = `Bearer ${open.jwtSvid}`;
    this.transport = new StreamableHTTPClientTransport(new URL(config.url), { requestInit: { headers } });
    this.transport.onmessage = this.onMessage;
    this.transport.onerror = this.onError;
  }

  async start(): Promise<void> {
    await this.transport.start();
    // Every request the transport makes adds an abort listener to its one AbortSignal, which fetch
    // (undici) removes only when the request is garbage-collected. A busy session passes Node's
    // default of 1,500 without leaking and would print a "possible memory leak" warning per
    // request; the count is bounded by what the GC has not yet collected, so lift the limit for
    // this signal only.
    const signal = (this.transport as unknown as { _abortController?: AbortController })._abortController?.signal;
    if (signal) setMaxListeners(0, signal);
  }

  send(message: JSONRPCMessage, bytes: number): void {
    if ('method' in message && message.method === 'initialize' && 'id' in message) this.initializeId = message.id;
    // One HTTP request per message: the closure is nothing next to the request itself.
    this.transport.send(message).then(() => {
      if (!this.closing) this.sink.written(bytes);
    }, this.onSendFailed);
  }

  pause(): void {
    // The SDK reads its HTTP responses itself; the session's output buffer bounds what piles up.
  }

  resume(): void {}

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.transport.terminateSession(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, TERMINATE_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'terminating the backend MCP session failed');
    } finally {
      clearTimeout(timer);
    }
    await this.transport.close().catch(() => undefined);
  }

  private readonly onMessage = (message: JSONRPCMessage): void => {
    if (this.closing) return;
    if (this.initializeId !== undefined && 'id' in message && message.id === this.initializeId && 'result' in message) {
      this.initializeId = undefined;
      const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
      if (typeof version === 'string') this.transport.setProtocolVersion(version);
    }
    this.sink.message(message);
  };

  private readonly onSendFailed = (err: unknown): void => {
    if (this.closing) return;
    const status = err instanceof StreamableHTTPError && err.code !== undefined && err.code > 0 ? `HTTP ${err.code}` : (err as Error).message;
    this.logger.warn({ err: (err as Error).message }, 'backend HTTP request failed');
    this.closing = true;
    this.sink.ended(`backend request failed (${status})`);
    void this.transport.close().catch(() => undefined);
  };

  private readonly onError = (err: Error): void => {
    if (!this.closing) this.logger.debug({ err: err.message }, 'backend transport error');
  };
}
