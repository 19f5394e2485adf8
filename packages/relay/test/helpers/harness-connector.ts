/**
 * A connector harness: speaks the link protocol with the codec from @switchboard/protocol and
 * answers JSON-RPC like a tiny MCP server, so relay tests control every frame. Every wait is bounded.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import {
  FrameType,
  LINK_PROTOCOL_VERSION,
  LINK_SUBPROTOCOL,
  decodeFrame,
  encodeControl,
  encodeData,
  encodeWindow,
  type ClosePayload,
  type Frame,
  type OpenPayload,
  type WelcomePayload,
} from '@switchboard/protocol';
import type WebSocket from 'ws';
import type { ClientOptions } from 'ws';
import type { Msg } from './agent-client.js';
import { connect, outcome, type Creds, type TestRelay } from './relay.js';
import { within } from './time.js';

/** HarnessSession is one session the relay opened on the harness link. */
export interface HarnessSession {
  readonly id: number;
  readonly open: OpenPayload;
  /** received holds the DATA payloads from the relay, as text. */
  readonly received: string[];
  /** credit is what the harness may still send (bytes), per docs/protocol.md. */
  credit: number;
  closedBy?: ClosePayload;
  /** grant: return WINDOW for each DATA received (default true). */
  grant: boolean;
}

/** Handler answers a JSON-RPC message like an MCP server would; return undefined for no answer. */
export type Handler = (session: HarnessSession, msg: Msg) => object | undefined;

export const CRM_TOOLS = [
  { name: 'lookup_customer', description: 'find a customer', inputSchema: { type: 'object' } },
  { name: 'delete_customer', description: 'remove a customer', inputSchema: { type: 'object' } },
  { name: 'get_order', description: 'an order', inputSchema: { type: 'object' } },
  { name: 'update_order', description: 'change an order', inputSchema: { type: 'object' } },
  { name: 'echo', description: 'echo', inputSchema: { type: 'object' } },
  { name: 'lookup_delete_log', description: 'allowed by lookup_*, denied by *delete*', inputSchema: { type: 'object' } },
];

/** tinyMcpServer answers like a small MCP server; tools/list is paginated in pages of 3. */
export const tinyMcpServer: Handler = (session, msg) => {
  if (msg.id === undefined || msg.method === undefined) return undefined;
  const params = (msg.params ?? {}) as Record<string, unknown>;
  switch (msg.method) {
    case 'initialize':
      return { jsonrpc: '2.0', id: msg.id, result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'tiny', version: '1' } } };
    case 'ping':
      return { jsonrpc: '2.0', id: msg.id, result: {} };
    case 'tools/list': {
      const start = params.cursor === undefined ? 0 : Number(params.cursor);
      const page = CRM_TOOLS.slice(start, start + 3);
      const next = start + 3 < CRM_TOOLS.length ? { nextCursor: String(start + 3) } : {};
      return { jsonrpc: '2.0', id: msg.id, result: { tools: page, ...next } };
    }
    case 'tools/call':
      return {
        jsonrpc: '2.0',
        id: msg.id,
        result: { content: [{ type: 'text', text: `${String(params.name)} on session ${session.id}` }] },
      };
    default:
      if (msg.method.startsWith('slow/')) return undefined;
      return { jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'Method not found' } };
  }
};

/** HarnessConnector is one connector link under the test's control. */
export class HarnessConnector {
  readonly ws: WebSocket;
  welcome: WelcomePayload | undefined;
  readonly sessions = new Map<number, HarnessSession>();
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  handler: Handler = tinyMcpServer;
  /** onOpen decides how OPEN is answered (default: OPEN_OK). */
  onOpen: (s: HarnessSession) => 'ok' | 'fail' | 'ignore' = () => 'ok';
  /** socket is the link's TLS socket (for REAUTH proofs), when it was dialed by {@link dial}. */
  socket: TLSSocket | undefined;
  /** grantByDefault sets `grant` of new sessions. */
  grantByDefault = true;
  private listeners = new Set<() => void>();

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) this.onFrame(decodeFrame(data));
      this.notify();
    });
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString('utf8') });
        this.notify();
      });
    });
    ws.on('error', () => undefined);
  }

  /** connect opens a link as `id` and sends HELLO for `servers`; resolves after WELCOME. */
  static async connect(t: TestRelay, id: string, servers: string[], extra: ClientOptions = {}): Promise<HarnessConnector> {
    const h = await HarnessConnector.dial(t, id, extra);
    h.hello(servers);
    await h.until(() => h.welcome, 'WELCOME');
    return h;
  }

  /** dial opens the link without sending HELLO. */
  static async dial(t: TestRelay, id: string, extra: ClientOptions = {}, creds?: Creds): Promise<HarnessConnector> {
    const ws = connect(t, '/v1/connector', creds ?? (await t.creds(id)), LINK_SUBPROTOCOL, extra);
    let socket: TLSSocket | undefined;
    ws.once('upgrade', (res: IncomingMessage) => {
      socket = res.socket as TLSSocket;
    });
    const o = await outcome(ws);
    if (o.kind !== 'open') throw new Error(`connector ${id} could not connect: ${JSON.stringify(o)}`);
    const h = new HarnessConnector(ws);
    h.socket = socket;
    return h;
  }

  hello(servers: string[], version = LINK_PROTOCOL_VERSION): void {
    this.ws.send(encodeControl(FrameType.HELLO, 0, { version, servers, agent: 'harness/1' }));
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  /** until waits for `pred` to return a value (checked after every frame), at most `ms`. */
  until<T>(pred: () => T | undefined | false, what: string, ms = 5000): Promise<T> {
    const now = pred();
    if (now !== undefined && now !== false) return Promise.resolve(now);
    return within(
      new Promise<T>((resolve) => {
        const l = (): void => {
          const v = pred();
          if (v !== undefined && v !== false) {
            this.listeners.delete(l);
            resolve(v);
          }
        };
        this.listeners.add(l);
      }),
      ms,
      what,
    ).finally(() => this.listeners.clear());
  }

  private onFrame(f: Frame): void {
    this.frames.push(f);
    switch (f.type) {
      case FrameType.WELCOME:
        this.welcome = f.payload;
        return;
      case FrameType.OPEN: {
        const s: HarnessSession = { id: f.sessionId, open: f.payload, received: [], credit: this.welcome?.window ?? 0, grant: this.grantByDefault };
        this.sessions.set(f.sessionId, s);
        const answer = this.onOpen(s);
        if (answer === 'ok') this.ws.send(encodeControl(FrameType.OPEN_OK, f.sessionId, {}));
        else if (answer === 'fail') this.ws.send(encodeControl(FrameType.OPEN_FAIL, f.sessionId, { code: 4502, reason: 'backend failed to start' }));
        return;
      }
      case FrameType.DATA: {
        const s = this.sessions.get(f.sessionId);
        if (!s) return;
        const text = f.data.toString('utf8');
        s.received.push(text);
        if (s.grant) this.ws.send(encodeWindow(f.sessionId, f.data.length));
        const reply = this.handler(s, JSON.parse(text) as Msg);
        if (reply !== undefined) this.sendData(s.id, reply);
        return;
      }
      case FrameType.WINDOW: {
        const s = this.sessions.get(f.sessionId);
        if (s) s.credit += f.increment;
        return;
      }
      case FrameType.CLOSE: {
        const s = this.sessions.get(f.sessionId);
        if (s) s.closedBy = f.payload;
        return;
      }
      default:
    }
  }

  /** sendData sends one message for a session, counting credit (it does not check it). */
  sendData(sessionId: number, msg: object | string | Buffer): void {
    const buf = Buffer.isBuffer(msg) ? msg : Buffer.from(typeof msg === 'string' ? msg : JSON.stringify(msg));
    const s = this.sessions.get(sessionId);
    if (s) s.credit -= buf.length;
    this.ws.send(encodeData(sessionId, buf));
  }

  sendFrame(frame: Buffer): void {
    this.ws.send(frame);
  }

  closeSession(sessionId: number, code: number, reason: string): void {
    this.ws.send(encodeControl(FrameType.CLOSE, sessionId, { code, reason }));
  }

  /** session waits for the `n`-th OPEN (1-based) and returns its session. */
  session(n: number): Promise<HarnessSession> {
    return this.until(() => [...this.sessions.values()][n - 1], `OPEN #${n}`);
  }

  /** messages parses what the relay forwarded on a session. */
  messages(sessionId: number): Msg[] {
    return (this.sessions.get(sessionId)?.received ?? []).map((t) => JSON.parse(t) as Msg);
  }

  /** allMessages lists everything the relay forwarded, on every session. */
  allMessages(): Msg[] {
    return [...this.sessions.keys()].flatMap((id) => this.messages(id));
  }

  close(): void {
    this.ws.close(1000, 'harness done');
  }
}
