import { performance } from 'node:perf_hooks';
import { endSpan, SpanKind, SpanStatusCode, validTraceparent, type Span, type Tracing } from '@switchboard/common/tracing';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { CloseCode, encodeControl, encodeData, encodeWindow, FrameType, HEADER_BYTES, MAX_EVENT_FIELD, type EventPayload, type OpenOkPayload } from '@switchboard/protocol';
import type { EgressDenial } from '../sandbox/egress-proxy.js';
import type { BackendSession, BackendSink } from '../backend/backend.js';
import { MAX_BACKEND_MESSAGE_BYTES } from '../backend/stdio-backend.js';
import type { Logger } from '@switchboard/common';

/** DEFAULT_OUTPUT_BUFFER_BYTES bounds what one session may buffer while the relay withholds credit (8 MiB). */
export const DEFAULT_OUTPUT_BUFFER_BYTES = 8 * 1024 * 1024;
const SENT = Buffer.alloc(0);
/** MAX_EGRESS_REPORTS bounds the distinct refused destinations one session reports to the relay. */
const MAX_EGRESS_REPORTS = 256;

/** BackendTimings hears how long backends take: to start, and to answer each request. */
export interface BackendTimings {
  /** started: OPEN to backend ready (or failed). */
  started(server: string, seconds: number, ok: boolean): void;
  /** answered: a request delivered to the backend until its response (`ok` false for an error response). */
  answered(server: string, seconds: number, ok: boolean): void;
}

/** MAX_TIMED_BYTES: larger requests are not timed (parsing them for an id would cost more than it tells). */
const MAX_TIMED_BYTES = 64 * 1024;
/** MAX_TIMED_REQUESTS bounds the requests one session times at once (the oldest is forgotten). */
const MAX_TIMED_REQUESTS = 1024;

/** SessionHost is what a session needs from its link. */
export interface SessionHost {
  /** sendFrame writes one encoded frame on the link (dropped when the link is gone). */
  sendFrame(frame: Buffer): void;
  /** sessionEnded removes the session from the link's table. */
  sessionEnded(session: Session): void;
  /** track keeps a backend's closing so the link's shutdown can wait for it. */
  track(closing: Promise<void>): void;
  /** countOverflow counts a session closed with 4508. */
  countOverflow(): void;
  /** sessionMoved removes the session from the link's table without ending it (it was detached or resumed elsewhere). */
  sessionMoved(session: Session): void;
  /** countEgressDenied counts a destination refused to this session's contained server. */
  countEgressDenied(): void;
  /** events is true when the relay accepts EVENT frames on this link (WELCOME.events). */
  readonly events: boolean;
  readonly outputBufferBytes: number;
  /** timings, when set, hears backend start and request times (the connector's histograms). */
  readonly timings?: BackendTimings | undefined;
  /** tracing, when set and enabled, records the session's and its calls' spans. */
  readonly tracing?: Tracing | undefined;
}

/** DETACHED is the host of a session whose link is gone: frames go nowhere until a resume. */
const DETACHED: SessionHost = Object.freeze({
  sendFrame: () => undefined,
  sessionEnded: () => undefined,
  track: () => undefined,
  countOverflow: () => undefined,
  sessionMoved: () => undefined,
  countEgressDenied: () => undefined,
  events: false,
  outputBufferBytes: DEFAULT_OUTPUT_BUFFER_BYTES,
  timings: undefined,
  tracing: undefined,
});

function parseOrUndefined(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** SessionState is where a session is in its life cycle ('detached': its link is gone, it waits to be resumed). */
export type SessionState = 'opening' | 'open' | 'detached' | 'closed';

/**
 * Session is one agent session on a link: the bridge between DATA frames and a backend session,
 * with the per-direction credit of docs/protocol.md. Output beyond the relay's credit waits in a
 * bounded buffer (the backend's stdout is paused meanwhile); past the bound the session is closed
 * with 4508. Credit for agent input is returned only once the backend took the bytes.
 */
export class Session implements BackendSink {
  /** id is the session's id on the link carrying it (a resume gives it the new link's id). */
  id: number;
  readonly server: string;
  readonly agent: string;
  logger: Logger;
  state: SessionState = 'opening';
  backend: BackendSession | undefined;
  /** resumeId names the session's resume credential, when it has one. */
  resumeId: string | undefined;
  /** onRelease is called once when the session ends for good (the resume table forgets it). */
  onRelease: ((session: Session) => void) | undefined;

  private host: SessionHost;
  private outCredit: number;
  private inCredit: number;
  private pendingGrant = 0;
  private grantThreshold: number;
  // DATA frames waiting for credit, oldest first from queueHead; their payload bytes are queuedBytes.
  private queue: Buffer[] = [];
  private readonly egressReported = new Set<string>();
  private queueHead = 0;
  private queuedBytes = 0;
  private paused = false;
  // Agent input that arrived before the backend was ready; bounded by the input credit.
  private early: Buffer[] | undefined;
  // Requests delivered to the backend and not answered yet: id (as typed JSON text) → when.
  private timed: Map<string, number> | undefined;
  private readonly timings: BackendTimings | undefined;
  // Tracing (when on): the session's span, and the open tools/call spans by request id.
  private readonly tracing: Tracing | undefined;
  private span: Span | undefined;
  private callSpans: Map<string, Span> | undefined;

  constructor(host: SessionHost, id: number, server: string, agent: string, window: number, logger: Logger) {
    this.host = host;
    this.id = id;
    this.server = server;
    this.agent = agent;
    this.outCredit = window;
    this.inCredit = window;
    // Return credit in batches (a quarter window) rather than one WINDOW frame per message; the
    // relay keeps at least three quarters of its window, so it never stalls on our batching.
    this.grantThreshold = Math.max(1, Math.floor(window / 4));
    this.logger = logger;
    this.timings = host.timings;
    this.tracing = host.tracing?.enabled === true ? host.tracing : undefined;
  }

  /** traceFrom starts the session's span, a child of the relay's (OPEN's `traceparent`), when tracing is on. */
  traceFrom(traceparent: string | undefined): void {
    this.span = this.tracing?.span(`mcp.backend.session ${this.server}`, {
      parent: traceparent,
      kind: SpanKind.SERVER,
      attributes: { 'switchboard.server': this.server, 'switchboard.agent': this.agent },
    });
  }

  /** opened marks the backend ready: OPEN_OK (with `ok`, e.g. a resume credential) goes out, then any input that arrived early is delivered. */
  opened(backend: BackendSession, ok: OpenOkPayload = {}): void {
    this.backend = backend;
    this.state = 'open';
    this.host.sendFrame(encodeControl(FrameType.OPEN_OK, this.id, ok));
    // Output the backend produced before OPEN_OK went out waits in the queue: DATA never precedes it.
    this.flush();
    const early = this.early;
    this.early = undefined;
    if (early) for (const data of early) this.deliver(data);
  }

  /**
   * detach keeps the session alive without a link: the backend runs on, its output waits in the
   * bounded buffer (the backend is paused once output is waiting), until {@link reattach} or release.
   */
  detach(): void {
    if (this.state !== 'open') return;
    this.host.sessionMoved(this);
    this.host = DETACHED;
    this.state = 'detached';
    this.logger.info({}, 'link lost; the session waits to be resumed');
  }

  /**
   * reattach moves the session to `host` as session `id` with a fresh `window` each way (a
   * resume): OPEN_OK `ok` goes out, then the output that waited. A session still attached to
   * another link (whose loss we have not seen yet) is closed there with 4409 first.
   */
  reattach(host: SessionHost, id: number, window: number, logger: Logger, ok: OpenOkPayload): void {
    if (this.state === 'open') {
      this.host.sendFrame(encodeControl(FrameType.CLOSE, this.id, { code: CloseCode.SESSION_MOVED, reason: 'session resumed through another relay' }));
      this.host.sessionMoved(this);
    }
    this.host = host;
    this.id = id;
    this.logger = logger;
    this.outCredit = window;
    this.inCredit = window;
    this.pendingGrant = 0;
    this.grantThreshold = Math.max(1, Math.floor(window / 4));
    this.state = 'open';
    this.host.sendFrame(encodeControl(FrameType.OPEN_OK, this.id, ok));
    this.logger.info({ buffered: this.queuedBytes }, 'session resumed');
    this.flush();
  }

  /** data handles a DATA frame from the relay. */
  data(data: Buffer): void {
    if (this.state === 'closed') return;
    if (this.inCredit <= 0) {
      this.fail(CloseCode.POLICY_VIOLATION, 'relay exceeded the session window');
      return;
    }
    this.inCredit -= data.length;
    if (this.state === 'opening') {
      // The frame's buffer is a view of the WebSocket message; it is not reused by ws.
      (this.early ??= []).push(data);
      return;
    }
    this.deliver(data);
  }

  private deliver(data: Buffer): void {
    const backend = this.backend as BackendSession;
    const t0 = this.timings === undefined ? 0 : performance.now();
    // Parsed once for both: the span replaces only the traceparent's value, not the id or method.
    const parsed = (this.tracing !== undefined || this.timings !== undefined) && data.length <= MAX_TIMED_BYTES ? parseOrUndefined(data) : undefined;
    if (this.tracing !== undefined && parsed !== undefined) data = this.traceRequest(data, parsed);
    if (backend.sendRaw !== undefined && backend.sendRaw(data)) {
      if (this.timings !== undefined && parsed !== undefined) this.timeRequest(parsed, t0);
      return;
    }
    let message: JSONRPCMessage;
    try {
      message = JSON.parse(data.toString('utf8')) as JSONRPCMessage;
    } catch {
      // The relay forwards only parsed messages; drop the frame and keep the credit flowing.
      this.logger.warn({ bytes: data.length }, 'dropped a DATA frame that is not JSON');
      this.written(data.length);
      return;
    }
    if (this.timings !== undefined) this.timeRequest(message, t0);
    backend.send(message, data.length);
  }

  /**
   * traceRequest starts the span of a tools/call, a child of the relay's call span (the request's
   * `params._meta.traceparent`), and hands the backend our span instead: the traceparent is
   * replaced in place (same length), every other byte stays as the relay sent it.
   */
  private traceRequest(data: Buffer, parsed: unknown): Buffer {
    const m = parsed as { id?: unknown; method?: unknown; params?: { name?: unknown; _meta?: { traceparent?: unknown } } } | undefined;
    if (m === undefined || m.method !== 'tools/call' || (typeof m.id !== 'string' && typeof m.id !== 'number')) return data;
    const parent = m.params?._meta?.traceparent;
    const name = typeof m.params?.name === 'string' ? m.params.name : '';
    const span = this.tracing?.span(`tools/call ${name}`.trim(), {
      parent: validTraceparent(parent) ? parent : this.span,
      kind: SpanKind.CLIENT,
      attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': name, 'jsonrpc.request.id': JSON.stringify(m.id), 'switchboard.server': this.server, 'switchboard.agent': this.agent },
    });
    if (span === undefined) return data;
    const spans = (this.callSpans ??= new Map());
    if (spans.size >= MAX_TIMED_REQUESTS) {
      const oldest = spans.keys().next().value as string;
      endSpan(spans.get(oldest), 'not answered before newer requests');
      spans.delete(oldest);
    }
    spans.set(typeof m.id === 'string' ? `s${m.id}` : `n${m.id}`, span);
    if (!validTraceparent(parent)) return data;
    const ours = this.tracing?.traceparent(span) as string;
    const at = data.indexOf(`"traceparent":"${parent}"`);
    if (at < 0) return data;
    const out = Buffer.from(data);
    out.write(ours, at + '"traceparent":"'.length, 'latin1');
    return out;
  }

  /** timeRequest remembers when a request went to the backend, keyed by its id. */
  private timeRequest(message: unknown, t0: number): void {
    const m = message as { id?: unknown; method?: unknown } | undefined;
    if (m === undefined || typeof m.method !== 'string' || (typeof m.id !== 'string' && typeof m.id !== 'number')) return;
    const timed = (this.timed ??= new Map());
    if (timed.size >= MAX_TIMED_REQUESTS) timed.delete(timed.keys().next().value as string);
    timed.set(typeof m.id === 'string' ? `s${m.id}` : `n${m.id}`, t0);
  }

  /** timeAnswer observes the latency of the request a backend response answers. */
  private timeAnswer(message: JSONRPCMessage): void {
    const m = message as { id?: unknown; method?: unknown; error?: unknown };
    if (this.timed === undefined || m.method !== undefined || (typeof m.id !== 'string' && typeof m.id !== 'number')) return;
    const key = typeof m.id === 'string' ? `s${m.id}` : `n${m.id}`;
    const t0 = this.timed.get(key);
    if (t0 === undefined) return;
    this.timed.delete(key);
    this.timings?.answered(this.server, (performance.now() - t0) / 1000, m.error === undefined);
  }

  private endCallSpan(message: JSONRPCMessage): void {
    const m = message as { id?: unknown; method?: unknown; error?: { message?: unknown } };
    if (m.method !== undefined || (typeof m.id !== 'string' && typeof m.id !== 'number')) return;
    const key = typeof m.id === 'string' ? `s${m.id}` : `n${m.id}`;
    const span = this.callSpans?.get(key);
    if (span === undefined) return;
    this.callSpans?.delete(key);
    endSpan(span, m.error === undefined ? undefined : `the backend answered with an error: ${String(m.error.message ?? '')}`.slice(0, 200));
  }

  /** window handles a WINDOW frame: more output credit, which flushes buffered output. */
  window(increment: number): void {
    if (this.state === 'closed') return;
    this.outCredit += increment;
    this.flush();
  }

  private flush(): void {
    if (this.state !== 'open') return;
    while (this.outCredit > 0 && this.queueHead < this.queue.length) {
      const frame = this.queue[this.queueHead] as Buffer;
      this.queue[this.queueHead++] = SENT;
      const bytes = frame.length - HEADER_BYTES;
      this.queuedBytes -= bytes;
      this.outCredit -= bytes;
      this.host.sendFrame(frame);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
      if (this.paused) {
        this.paused = false;
        this.backend?.resume();
      }
    }
  }

  // BackendSink

  /**
   * message forwards one backend message to the agent, within the relay's credit: `json` as is
   * when the backend passed the line it read, else the message serialised.
   */
  message(message: JSONRPCMessage, json?: string): void {
    if (this.state === 'closed') return;
    if (this.timed !== undefined) this.timeAnswer(message);
    if (this.callSpans !== undefined) this.endCallSpan(message);
    json ??= JSON.stringify(message);
    // UTF-8 takes at least one byte per UTF-16 unit and at most three: count only near the limit.
    if (json.length * 3 > MAX_BACKEND_MESSAGE_BYTES) {
      const size = Buffer.byteLength(json);
      if (size > MAX_BACKEND_MESSAGE_BYTES) {
        this.fail(CloseCode.MESSAGE_TOO_BIG, `backend message of ${size} bytes exceeds the ${MAX_BACKEND_MESSAGE_BYTES}-byte limit`);
        return;
      }
    }
    const frame = encodeData(this.id, json);
    const bytes = frame.length - HEADER_BYTES;
    if (this.state === 'open' && this.outCredit > 0 && this.queueHead === this.queue.length) {
      this.outCredit -= bytes;
      this.host.sendFrame(frame);
      return;
    }
    this.queuedBytes += bytes;
    if (this.queuedBytes > this.host.outputBufferBytes) {
      this.host.countOverflow();
      this.fail(CloseCode.SESSION_OVERFLOW, `agent is not reading: more than ${this.host.outputBufferBytes} bytes of output buffered`);
      return;
    }
    this.queue.push(frame);
    if (!this.paused) {
      this.paused = true;
      this.backend?.pause();
    }
  }

  /**
   * egressDenied reports a destination the contained server was refused: counted, and sent to the
   * relay (EVENT, for its audit trail) once per destination and session, at most
   * {@link MAX_EGRESS_REPORTS} destinations.
   */
  egressDenied(denial: EgressDenial): void {
    if (this.state === 'closed') return;
    const key = `${denial.destination}:${denial.port}`;
    if (this.egressReported.has(key) || this.egressReported.size >= MAX_EGRESS_REPORTS) return;
    this.egressReported.add(key);
    this.host.countEgressDenied();
    if (this.host.events) {
      const payload: EventPayload = { kind: 'egress.denied', destination: denial.destination.slice(0, MAX_EVENT_FIELD), port: denial.port, reason: denial.reason.slice(0, MAX_EVENT_FIELD) };
      this.host.sendFrame(encodeControl(FrameType.EVENT, this.id, payload));
    }
  }

  /** written returns input credit once the backend took the bytes, in quarter-window batches. */
  written(bytes: number): void {
    if (this.state === 'closed') return;
    this.pendingGrant += bytes;
    if (this.pendingGrant >= this.grantThreshold) {
      this.inCredit += this.pendingGrant;
      this.host.sendFrame(encodeWindow(this.id, this.pendingGrant));
      this.pendingGrant = 0;
    }
  }

  /** ended reports a backend that ended on its own: CLOSE 4502 to the relay. */
  ended(reason: string): void {
    this.fail(CloseCode.BACKEND_FAILED, reason);
  }

  /** buffered is the number of output bytes waiting for credit. */
  get buffered(): number {
    return this.queuedBytes;
  }

  /** fail ends the session from our side: CLOSE with `code` to the relay, then the backend is closed. */
  fail(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.span?.setStatus({ code: SpanStatusCode.ERROR, message: `closed ${code}: ${reason}` });
    this.host.sendFrame(encodeControl(FrameType.CLOSE, this.id, { code, reason }));
    this.logger.info({ code, reason }, 'session closed by connector');
    this.release();
  }

  /** closedByRelay ends the session on the relay's CLOSE; nothing is sent back. */
  closedByRelay(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.logger.info({ code, reason }, 'session closed by relay');
    this.release();
  }

  /** release frees the session without telling the relay (the link is gone, or it was told already). */
  release(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.state = 'closed';
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.early = undefined;
    if (this.callSpans !== undefined) for (const span of this.callSpans.values()) endSpan(span, 'the session ended first');
    this.callSpans = undefined;
    endSpan(this.span);
    this.host.sessionEnded(this);
    this.onRelease?.(this);
    if (!this.backend) return Promise.resolve();
    const closing = this.backend.close();
    this.host.track(closing);
    return closing;
  }
}
