/**
 * Test harness for the relay: real TLS with certificates minted per test, an agent client, and a
 * connector harness that speaks the link protocol with the codec from @switchboard/protocol and
 * answers JSON-RPC like a tiny MCP server. Every wait is bounded.
 */
import type { IncomingMessage } from 'node:http';
import {
  FrameType,
  LINK_PROTOCOL_VERSION,
  LINK_SUBPROTOCOL,
  AGENT_SUBPROTOCOL,
  decodeFrame,
  encodeControl,
  encodeData,
  encodeWindow,
  type ClosePayload,
  type Frame,
  type OpenPayload,
  type WelcomePayload,
} from '@switchboard/protocol';
import { createTestCA, type TestCA, type TestIssueOptions } from '@switchboard/pki/testing';
import WebSocket, { type ClientOptions } from 'ws';
import type { AuditFs } from '@switchboard/audit';
import type { RelayAuditOptions } from '../src/audit/open.js';
import { MemoryAuditSink } from '../src/audit/sink.js';
import type { EnforcementOptions, RelayLimits } from '../src/config.js';
import type { PolicyDocument } from '../src/policy/document.js';
import { startRelay, type Relay, type RelayOptions } from '../src/relay.js';
import type { RelayTiming } from '../src/session/context.js';

export const TD = 'spiffe://example.org';
export const RELAY_ID = `${TD}/relay/main`;
export const CRM_CONNECTOR = `${TD}/connector/crm`;
export const SUPPORT = `${TD}/agent/support/alice`;
export const SUPPORT_2 = `${TD}/agent/support/bob`;
export const OUTSIDER = `${TD}/agent/outsider`;
export const SAMPLER = `${TD}/agent/sampler`;

/** STANDARD_POLICY is the policy most tests use. */
export const STANDARD_POLICY: PolicyDocument = {
  trustDomain: 'example.org',
  servers: {
    crm: { connectors: [CRM_CONNECTOR] },
    tickets: { connectors: [`${TD}/connector/tickets`] },
  },
  rules: [
    {
      id: 'support-reads-crm',
      agents: [`${TD}/agent/support/*`],
      servers: ['crm'],
      tools: { allow: ['lookup_*', 'get_order', 'echo'], deny: ['*delete*'] },
    },
    { id: 'support-tickets', agents: [`${TD}/agent/support/*`], servers: ['tickets'], tools: { allow: ['*'] } },
    { id: 'sampler', agents: [SAMPLER], servers: ['crm'], tools: { allow: ['echo'] }, serverRequests: { sampling: true } },
  ],
};

/** within rejects when `p` does not settle in `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Creds are what a TLS client presents: its chain and key, and the bundle it trusts. */
export interface Creds {
  cert: string;
  key: string;
  ca: string;
}

export interface TestRelay {
  relay: Relay;
  ca: TestCA;
  audit: MemoryAuditSink;
  /** creds mints (once per id) a certificate for `id` from the relay's CA. */
  creds(id: string, options?: TestIssueOptions): Promise<Creds>;
  close(): Promise<void>;
}

export interface TestRelayOptions {
  policy?: PolicyDocument | string;
  limits?: Partial<RelayLimits>;
  timing?: Partial<RelayTiming>;
  enforcement?: Partial<EnforcementOptions>;
  /** audit: a trail file (default: an in-memory sink, `t.audit`); `auditSink` replaces the memory sink. */
  audit?: RelayAuditOptions;
  auditSink?: MemoryAuditSink;
  /** auditFs is the trail's file layer (to delay or fail fsync). */
  auditFs?: AuditFs;
  admin?: { listen: string };
  /** relayOptions adds startRelay options built from the relay's CA (pins, jwtSigner, watchPolicy). */
  relayOptions?: (ca: TestCA) => Partial<RelayOptions>;
}

export async function startTestRelay(options: TestRelayOptions = {}): Promise<TestRelay> {
  const ca = await createTestCA({ trustDomain: 'example.org' });
  const svid = await ca.issue(RELAY_ID);
  const audit = options.auditSink ?? new MemoryAuditSink();
  const relay = await startRelay(
    {
      listen: '127.0.0.1:0',
      identity: { svid, bundle: ca.bundle },
      policy: options.policy ?? STANDARD_POLICY,
      audit: options.audit ?? { sink: audit },
      ...(options.admin ? { admin: options.admin } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.enforcement ? { enforcement: options.enforcement } : {}),
      ...(options.relayOptions ? options.relayOptions(ca) : {}),
    },
    { ...(options.timing ? { timing: options.timing } : {}), ...(options.auditFs ? { auditFs: options.auditFs } : {}) },
  );
  const cache = new Map<string, Promise<Creds>>();
  return {
    relay,
    ca,
    audit,
    creds(id, issueOptions) {
      const key = issueOptions ? `${id}|${JSON.stringify(issueOptions)}` : id;
      let c = cache.get(key);
      if (!c) {
        c = ca.issue(id, issueOptions).then((s) => ({ cert: s.certificatesPem(), key: s.privateKeyPem(), ca: ca.bundlePem }));
        cache.set(key, c);
      }
      return c;
    },
    close: () => relay.close({ drainTimeoutMs: 0 }),
  };
}

/** connect opens a WebSocket to the relay; `creds` undefined means no client certificate. */
export function connect(
  t: TestRelay,
  path: string,
  creds: Partial<Creds> | undefined,
  protocol: string | string[] | undefined,
  extra: ClientOptions = {},
): WebSocket {
  return new WebSocket(`${t.relay.url}${path}`, protocol, {
    ca: t.ca.bundlePem,
    ...(creds?.cert ? { cert: creds.cert, key: creds.key } : {}),
    ...(creds?.ca ? { ca: creds.ca } : {}),
    // The relay's SVID names it by URI SAN only; tests check the chain, not a hostname. (Node wants
    // `undefined` for "ok"; @types/ws types the hook as returning boolean, and `true` would fail.)
    checkServerIdentity: (() => undefined) as unknown as ClientOptions['checkServerIdentity'],
    perMessageDeflate: false,
    ...extra,
  });
}

export type Outcome = { kind: 'open'; ws: WebSocket } | { kind: 'refused'; status: number; body: string } | { kind: 'error'; message: string };

/** outcome reports how a connection attempt ended: open, refused with an HTTP status, or failed. */
export function outcome(ws: WebSocket, ms = 5000): Promise<Outcome> {
  return within(
    new Promise<Outcome>((resolve) => {
      ws.once('open', () => resolve({ kind: 'open', ws }));
      ws.once('unexpected-response', (req, res: IncomingMessage) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          resolve({ kind: 'refused', status: res.statusCode ?? 0, body });
          req.destroy();
        });
        res.on('error', () => resolve({ kind: 'refused', status: res.statusCode ?? 0, body }));
      });
      ws.once('error', (err) => resolve({ kind: 'error', message: err.message }));
    }),
    ms,
    'the connection outcome',
  );
}

// ------------------------------------------------------------------ agent client

type Msg = Record<string, unknown> & { id?: unknown; method?: string; result?: any; error?: any };

export class AgentClient {
  readonly ws: WebSocket;
  readonly received: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private next_ = 0;
  private wake: (() => void) | undefined;
  private nextId = 1;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.received.push(isBinary ? `<binary ${data.length}>` : data.toString('utf8'));
      this.wake?.();
    });
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString('utf8') });
        this.wake?.();
      });
    });
    ws.on('error', () => undefined);
  }

  static async open(t: TestRelay, id: string, server: string): Promise<AgentClient> {
    const ws = connect(t, `/v1/agent/${server}`, await t.creds(id), AGENT_SUBPROTOCOL);
    const o = await outcome(ws);
    if (o.kind !== 'open') throw new Error(`agent ${id} could not open ${server}: ${JSON.stringify(o)}`);
    return new AgentClient(ws);
  }

  send(msg: object | string): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** request sends a request with a fresh numeric id (or `id`) and returns the id. */
  request(method: string, params?: object, id?: string | number): string | number {
    const rid = id ?? this.nextId++;
    this.send({ jsonrpc: '2.0', id: rid, method, ...(params ? { params } : {}) });
    return rid;
  }

  /** nextRaw waits for the next message, as text. */
  async nextRaw(ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    while (this.next_ >= this.received.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for an agent message`);
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('agent socket closed while waiting for a message');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return this.received[this.next_++] as string;
  }

  async next(ms = 5000): Promise<Msg> {
    return JSON.parse(await this.nextRaw(ms)) as Msg;
  }

  /** call sends a request and waits for the response with its id (other messages are kept). */
  async call(method: string, params?: object, id?: string | number): Promise<Msg> {
    const rid = this.request(method, params, id);
    for (;;) {
      const m = await this.next();
      if (m.id === rid && m.method === undefined) return m;
    }
  }

  /** quiet asserts that no message arrives for `ms`. */
  async expectQuiet(ms = 150): Promise<void> {
    const before = this.received.length;
    await sleep(ms);
    if (this.received.length !== before) throw new Error(`unexpected agent message: ${this.received.slice(before).join(' | ')}`);
  }

  async closedWithin(ms = 5000): Promise<{ code: number; reason: string }> {
    return within(this.closed, ms, 'the agent socket to close');
  }
}

// ------------------------------------------------------------------ connector harness

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

export class HarnessConnector {
  readonly ws: WebSocket;
  welcome: WelcomePayload | undefined;
  readonly sessions = new Map<number, HarnessSession>();
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  handler: Handler = tinyMcpServer;
  /** onOpen decides how OPEN is answered (default: OPEN_OK). */
  onOpen: (s: HarnessSession) => 'ok' | 'fail' | 'ignore' = () => 'ok';
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
  static async dial(t: TestRelay, id: string, extra: ClientOptions = {}): Promise<HarnessConnector> {
    const ws = connect(t, '/v1/connector', await t.creds(id), LINK_SUBPROTOCOL, extra);
    const o = await outcome(ws);
    if (o.kind !== 'open') throw new Error(`connector ${id} could not connect: ${JSON.stringify(o)}`);
    return new HarnessConnector(ws);
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
