import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { OpenPayload } from '@switchboard/protocol';
import type { Logger } from '@switchboard/common';
import type { ServerConfig } from '../config.js';
import type { EgressDenial } from '../sandbox/egress-proxy.js';
import type { SandboxPlan } from '../sandbox/sandbox.js';
import type { BackendSession, BackendSink } from './backend.js';
import { HttpBackend } from './http-backend.js';
import { StdioBackend } from './stdio-backend.js';

/**
 * `isolation: shared` (docs/performance.md, "Shared servers"): one backend session — a stdio
 * process or one Streamable-HTTP MCP session — serves every agent session of a server. The hub
 * keeps the sessions apart on the one JSON-RPC stream:
 * - request ids are rewritten to the hub's own (and back on the response), progress tokens too;
 * - `initialize` goes to the backend once; later sessions get its result under their own id;
 * - server → agent requests, log messages and other unattributed notifications go to the one
 *   session with requests in flight, and are refused (requests) or dropped (notifications) when
 *   that is not exactly one session; progress goes by token, `resources/updated` to the sessions
 *   subscribed to that URI, `list_changed` to every session (the lists are the server's, shared);
 * - a backend that ends fails every attached session (CLOSE 4502) and is started again.
 * Policy, pinning, redaction and audit stay per agent session at the relay: each session is its
 * own stream there.
 */

/** UNATTRIBUTED answers a server → agent request the hub cannot give to exactly one session. */
export const UNATTRIBUTED_ERROR = Object.freeze({
  code: -32603,
  message: 'Switchboard: this server is shared by several agent sessions (isolation: shared) and this request cannot be attributed to one of them',
});

type Id = string | number;
type Msg = Record<string, unknown> & { id?: Id; method?: string; params?: Record<string, unknown> };

interface Pending {
  readonly session: SharedSession | undefined; // undefined: the hub's own request (an unsubscribe)
  readonly id: Id;
}

class SharedSession implements BackendSession {
  /** upstream ids of this session's requests in flight, by the session's own id (typed key). */
  readonly inFlight = new Map<string, number>();
  readonly subscriptions = new Set<string>();
  closed = false;
  constructor(
    readonly hub: SharedHub,
    readonly sink: BackendSink,
    readonly logger: Logger,
  ) {}
  start(): Promise<void> {
    return this.hub.attach(this);
  }
  send(message: JSONRPCMessage, bytes: number): void {
    if (!this.closed) this.hub.fromAgent(this, message as unknown as Msg, bytes);
  }
  // A slow reader must not stall the others: its own bounded output buffer (4508) is the limit.
  pause(): void {}
  resume(): void {}
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.hub.detach(this);
    }
    return Promise.resolve();
  }
}

const key = (id: Id): string => (typeof id === 'string' ? `s${id}` : `n${id}`);
const isId = (v: unknown): v is Id => typeof v === 'string' || typeof v === 'number';

/** SharedHub is the one backend session of a shared server and the agent sessions attached to it. */
export class SharedHub implements BackendSink {
  private backend: BackendSession | undefined;
  private starting: Promise<void> | undefined;
  private readonly sessions = new Set<SharedSession>();
  private nextId = 1;
  private nextToken = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly progress = new Map<string, { session: SharedSession; token: Id }>();
  /** server → agent requests in flight: the backend's id → the session it went to. */
  private readonly serverRequests = new Map<string, SharedSession>();
  private initResult: unknown;
  private initWaiting: { session: SharedSession; id: Id }[] | undefined;
  private initializedSent = false;
  /** credit: bytes handed to the backend, in order, owed back to their sessions once written. */
  private readonly credit: { session: SharedSession | undefined; bytes: number }[] = [];
  private closed = false;

  constructor(
    readonly server: string,
    private readonly config: ServerConfig,
    private readonly plan: SandboxPlan | undefined,
    private readonly logger: Logger,
    private readonly onRestart: () => void,
  ) {}

  /** session makes the backend session of one agent session on the shared backend. */
  session(sink: BackendSink, logger: Logger): BackendSession {
    return new SharedSession(this, sink, logger);
  }

  /** attached is the number of agent sessions on the backend. */
  get attached(): number {
    return this.sessions.size;
  }

  /** attach starts the backend if it is not running, then adds the session. */
  async attach(s: SharedSession): Promise<void> {
    if (this.closed) throw new Error('connector is shutting down');
    await this.ensure();
    if (s.closed) return;
    this.sessions.add(s);
  }

  private ensure(): Promise<void> {
    if (this.backend !== undefined) return Promise.resolve();
    this.starting ??= (async () => {
      const open: OpenPayload = { server: this.server, agent: '' };
      const b = this.config.kind === 'stdio' ? new StdioBackend(this.config, open, this, this.logger, this.plan, true) : new HttpBackend(this.config, open, this, this.logger);
      try {
        await b.start();
      } finally {
        this.starting = undefined;
      }
      this.backend = b;
      this.logger.info({}, 'shared backend started');
    })();
    return this.starting;
  }

  /** detach removes a session: its requests are cancelled at the server, its subscriptions dropped. */
  detach(s: SharedSession): void {
    if (!this.sessions.delete(s)) return;
    for (const upstream of s.inFlight.values()) {
      const p = this.pending.get(upstream);
      if (p !== undefined) this.pending.set(upstream, { session: undefined, id: p.id });
      this.toBackend({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: upstream, reason: 'the agent session ended' } }, undefined, 0);
    }
    s.inFlight.clear();
    for (const [token, t] of this.progress) if (t.session === s) this.progress.delete(token);
    for (const [id, owner] of this.serverRequests) if (owner === s) this.serverRequests.delete(id);
    if (this.initWaiting) this.initWaiting = this.initWaiting.filter((w) => w.session !== s);
    for (const uri of s.subscriptions) {
      if ([...this.sessions].some((o) => o.subscriptions.has(uri))) continue;
      const id = this.nextId++;
      this.pending.set(id, { session: undefined, id });
      this.toBackend({ jsonrpc: '2.0', id, method: 'resources/unsubscribe', params: { uri } }, undefined, 0);
    }
    s.subscriptions.clear();
  }

  /** fromAgent takes one message of an agent session to the backend, rewritten. */
  fromAgent(s: SharedSession, m: Msg, bytes: number): void {
    const method = m.method;
    if (method !== undefined && isId(m.id)) {
      if (method === 'initialize') {
        if (this.initResult !== undefined) return this.local(s, bytes, { jsonrpc: '2.0', id: m.id, result: this.initResult });
        if (this.initWaiting !== undefined) {
          this.initWaiting.push({ session: s, id: m.id });
          return this.credited(s, bytes);
        }
        this.initWaiting = [];
      }
      const uri = typeof m.params?.uri === 'string' ? m.params.uri : undefined;
      if (method === 'resources/subscribe' && uri !== undefined) s.subscriptions.add(uri);
      if (method === 'resources/unsubscribe' && uri !== undefined) {
        s.subscriptions.delete(uri);
        if ([...this.sessions].some((o) => o !== s && o.subscriptions.has(uri))) return this.local(s, bytes, { jsonrpc: '2.0', id: m.id, result: {} });
      }
      const upstream = this.nextId++;
      this.pending.set(upstream, { session: s, id: m.id });
      s.inFlight.set(key(m.id), upstream);
      let params = m.params;
      const meta = params?._meta as Record<string, unknown> | undefined;
      if (meta !== undefined && isId(meta.progressToken)) {
        const token = `p${this.nextToken++}`;
        this.progress.set(token, { session: s, token: meta.progressToken });
        params = { ...params, _meta: { ...meta, progressToken: token } };
      }
      return this.toBackend({ ...m, id: upstream, ...(params === undefined ? {} : { params }) }, s, bytes);
    }
    if (method !== undefined) {
      if (method === 'notifications/initialized') {
        if (this.initializedSent) return this.credited(s, bytes);
        this.initializedSent = true;
        return this.toBackend(m, s, bytes);
      }
      if (method === 'notifications/cancelled') {
        const requestId = m.params?.requestId;
        const upstream = isId(requestId) ? s.inFlight.get(key(requestId)) : undefined;
        if (upstream === undefined) return this.credited(s, bytes);
        return this.toBackend({ ...m, params: { ...m.params, requestId: upstream } }, s, bytes);
      }
      // The roots are each agent's; the server would ask for them on a stream it shares: not forwarded.
      if (method === 'notifications/roots/list_changed') return this.credited(s, bytes);
      return this.toBackend(m, s, bytes);
    }
    // A response: only to a server request that went to this session.
    if (isId(m.id) && this.serverRequests.get(key(m.id)) === s) {
      this.serverRequests.delete(key(m.id));
      return this.toBackend(m, s, bytes);
    }
    this.credited(s, bytes);
  }

  private toBackend(m: Msg, s: SharedSession | undefined, bytes: number): void {
    const b = this.backend;
    if (b === undefined) return s === undefined ? undefined : this.credited(s, bytes);
    this.credit.push({ session: s, bytes });
    b.send(m as unknown as JSONRPCMessage, bytes);
  }

  /** local answers a session without the backend. */
  private local(s: SharedSession, bytes: number, reply: Msg): void {
    this.credited(s, bytes);
    queueMicrotask(() => {
      if (!s.closed) s.sink.message(reply as unknown as JSONRPCMessage);
    });
  }

  private credited(s: SharedSession, bytes: number): void {
    queueMicrotask(() => {
      if (!s.closed) s.sink.written(bytes);
    });
  }

  // BackendSink: what the one backend session produces.

  message(message: JSONRPCMessage, json?: string): void {
    const m = message as unknown as Msg;
    if (m.method === undefined) return this.response(m);
    if (isId(m.id)) return this.serverRequest(m);
    this.notification(m, json);
  }

  private response(m: Msg): void {
    if (typeof m.id !== 'number') return;
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    this.pending.delete(m.id);
    const s = p.session;
    if (s === undefined || s.closed) return;
    s.inFlight.delete(key(p.id));
    const reply = { ...m, id: p.id };
    if (this.initWaiting !== undefined && 'result' in m && (m.result as { protocolVersion?: unknown } | undefined)?.protocolVersion !== undefined && this.initResult === undefined) {
      this.initResult = m.result;
      const waiting = this.initWaiting;
      this.initWaiting = undefined;
      s.sink.message(reply as unknown as JSONRPCMessage);
      for (const w of waiting) if (!w.session.closed) w.session.sink.message({ jsonrpc: '2.0', id: w.id, result: m.result } as unknown as JSONRPCMessage);
      return;
    }
    if (this.initWaiting !== undefined && this.initResult === undefined && 'error' in m) {
      // A failed initialize: the next one tries again; those waiting get the same error.
      const waiting = this.initWaiting;
      this.initWaiting = undefined;
      for (const w of waiting) if (!w.session.closed) w.session.sink.message({ jsonrpc: '2.0', id: w.id, error: m.error } as unknown as JSONRPCMessage);
    }
    s.sink.message(reply as unknown as JSONRPCMessage);
  }

  /** attributed is the one session a server message belongs to: the only one with requests in flight, or the only one attached. */
  private attributed(): SharedSession | undefined {
    const busy = [...this.sessions].filter((s) => s.inFlight.size > 0);
    if (busy.length === 1) return busy[0];
    if (busy.length === 0 && this.sessions.size === 1) return [...this.sessions][0];
    return undefined;
  }

  private serverRequest(m: Msg): void {
    const s = this.attributed();
    if (s === undefined) {
      this.logger.warn({ method: m.method }, 'shared backend request refused: it cannot be attributed to one agent session');
      this.toBackend({ jsonrpc: '2.0', id: m.id, error: UNATTRIBUTED_ERROR }, undefined, 0);
      return;
    }
    this.serverRequests.set(key(m.id as Id), s);
    s.sink.message(m as unknown as JSONRPCMessage);
  }

  private notification(m: Msg, json: string | undefined): void {
    const method = m.method as string;
    const params = m.params ?? {};
    if (method === 'notifications/progress') {
      const t = isId(params.progressToken) ? this.progress.get(String(params.progressToken)) : undefined;
      if (t === undefined || t.session.closed) return;
      t.session.sink.message({ ...m, params: { ...params, progressToken: t.token } } as unknown as JSONRPCMessage);
      return;
    }
    if (method === 'notifications/resources/updated') {
      for (const s of this.sessions) if (typeof params.uri === 'string' && s.subscriptions.has(params.uri)) s.sink.message(m as unknown as JSONRPCMessage, json);
      return;
    }
    if (method.endsWith('/list_changed')) {
      for (const s of this.sessions) s.sink.message(m as unknown as JSONRPCMessage, json);
      return;
    }
    if (method === 'notifications/cancelled' && isId(params.requestId)) {
      const s = this.serverRequests.get(key(params.requestId));
      if (s !== undefined) s.sink.message(m as unknown as JSONRPCMessage, json);
      return;
    }
    const s = this.attributed();
    if (s !== undefined) s.sink.message(m as unknown as JSONRPCMessage, json);
    else this.logger.debug({ method }, 'shared backend notification dropped: it cannot be attributed to one agent session');
  }

  written(): void {
    const c = this.credit.shift();
    if (c?.session !== undefined && !c.session.closed) c.session.sink.written(c.bytes);
  }

  egressDenied(denial: EgressDenial): void {
    // Whichever session caused it, the refusal is recorded for every session the server serves now.
    for (const s of this.sessions) s.sink.egressDenied?.(denial);
  }

  /** ended: the backend is gone. Every attached session fails (4502); the next session starts a new one. */
  ended(reason: string): void {
    if (this.closed) return;
    const sessions = [...this.sessions];
    this.logger.warn({ reason, sessions: sessions.length }, 'shared backend ended; its sessions fail and it starts again');
    this.reset();
    this.onRestart();
    for (const s of sessions) {
      s.closed = true;
      s.sink.ended(`shared backend ended (${reason}); every session on it was closed`);
    }
    // Started again at once, so the next session does not wait for the spawn.
    void this.ensure().catch((err: Error) => this.logger.warn({ err: err.message }, 'shared backend failed to start again'));
  }

  private reset(): void {
    this.backend = undefined;
    this.sessions.clear();
    this.pending.clear();
    this.progress.clear();
    this.serverRequests.clear();
    this.credit.length = 0;
    this.initResult = undefined;
    this.initWaiting = undefined;
    this.initializedSent = false;
  }

  /** close ends the backend (connector shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    const b = this.backend;
    this.reset();
    await this.starting?.catch(() => undefined);
    await (b ?? this.backend)?.close();
  }
}
