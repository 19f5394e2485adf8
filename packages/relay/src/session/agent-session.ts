import { performance } from 'node:perf_hooks';
import { endSpan, SpanKind, validTraceparent, type Span, type Tracing } from '@switchboard/common/tracing';
import { closeAsSent, protocolCloseOf, type ProtocolClose } from '../internal/ws-close.js';
import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '@switchboard/common';
import { CloseCode, checkReauthPayload, closeReason, encodeResumeToken, sendableCloseCode, type EventPayload, type OpenOkPayload, type ResumeToken } from '@switchboard/protocol';
import WebSocket from 'ws';
import type { AuditSink } from '../audit/sink.js';
import { watchExpiry, type ExpiryWatch } from '../auth/expiry.js';
import { judgeReauth } from '../auth/reauth.js';
import type { PeerAuthenticator, PeerIdentity } from '../auth/peer-auth.js';
import type { RelayLimits, UnknownToolReply } from '../config/limits.js';
import type { Enforcement } from '../enforce/enforcement.js';
import { Req, isForwardedPlain, isGoverned, requestKind } from '../enforce/request-kind.js';
import { SessionEnforcer } from '../enforce/session-enforcer.js';
import { coalesce } from '@switchboard/common';
import type { LinkSession, SessionHost } from '../link/link-session.js';
import {
  MessageKind,
  Methods,
  cancelledRequestKey,
  classify,
  isNotificationMethod,
  keyJson,
  methodIs,
  requestKey,
  type RequestKey,
} from '../message/jsonrpc.js';
import { RequestParams, withTraceparent } from '../message/request-params.js';
import { JsonScanError, JsonType, MessageShape, scanMessage, spanRaw, spanString } from '../message/strict-json.js';
import type { DenyReason, RelayMetrics } from '../metrics.js';
import type { Decision, ServerRequestKind } from '../policy/document.js';
import type { PolicyScope } from '../policy/scope.js';
import type { PolicyStore } from '../policy/store.js';
import { AuditGate } from './audit-gate.js';
import { AGENT_WRITE_HIGH_WATER, SessionFlow } from './flow.js';
import { SessionAudit } from './session-audit.js';
import { TurnGroup, TurnQueue } from './turns.js';
import {
  BATCH_REFUSED,
  DUPLICATE_KEY,
  ID_IN_FLIGHT,
  NOT_JSON_RPC,
  PARSE_ERROR,
  TOO_DEEP,
  auditUnavailableReply,
  backendUnavailableReply,
  methodNotFoundReply,
  serverRequestDeniedReply,
  tooManyInFlightReply,
} from './replies.js';

/** MAX_RELAY_LIST_PAGES bounds the pages of the relay's own tools/list (pinning a call made before any list). */
const MAX_RELAY_LIST_PAGES = 20;
/** MAX_EVENTS_PER_SESSION bounds the egress.denied records one session writes. */
const MAX_EVENTS_PER_SESSION = 256;

/** MAX_IN_FLIGHT bounds the outstanding requests per session and direction. */
export const MAX_IN_FLIGHT = 4096;

const OPENING = 0;
const OPEN = 1;
const CLOSED = 2;


const TEXT = Object.freeze({ binary: false });
const BINARY = Object.freeze({ binary: true });

// One scan result shared by every session: scanning and reading the spans happen in one
// synchronous stretch, before anything else can scan.
const shape = new MessageShape();

const kSession = Symbol('switchboard.agentSession');
type TaggedSocket = WebSocket & { [kSession]?: AgentSession };

/** SessionContext is what every agent session shares: limits, the policy, enforcement, the sinks. */
export interface SessionContext {
  readonly limits: RelayLimits;
  /** unknownToolReply is how a refused or unknown tool is answered (relay.yaml `enforcement`). */
  readonly unknownToolReply: UnknownToolReply;
  readonly policy: PolicyStore;
  readonly enforcement: Enforcement;
  readonly audit: AuditSink;
  readonly metrics: RelayMetrics;
  readonly logger: Logger;
  /** peerAuth checks a renewed certificate presented on the session (REAUTH). */
  readonly peerAuth: Pick<PeerAuthenticator, 'reauthenticate'>;
  /** sessionEnded is called once per session after it is freed (drain bookkeeping). */
  sessionEnded(): void;
  /** tracing starts the session's and its calls' spans ({@link Tracing.off} when relay.yaml has no `tracing`). */
  readonly tracing: Tracing;
}

/**
 * AgentSession is one agent WebSocket spliced onto one connector-link session. It is the policy
 * enforcement point: every agent message is scanned strictly and decided on its `method` and
 * `params.name`; server messages are matched to outstanding requests, `tools/list` results are
 * filtered, server→agent requests pass only where policy allows. Messages that pass unchanged are
 * forwarded as their original bytes. Flow control is delegated to {@link SessionFlow}.
 */
export class AgentSession implements LinkSession {
  /** sessionId is the id on the link, assigned by {@link SessionHost.attach}. */
  sessionId = 0;
  readonly server: string;
  /** agent is the identity the session is authenticated as: the handshake's, then each accepted REAUTH's. */
  agent: PeerIdentity;
  readonly link: SessionHost;
  private readonly ctx: SessionContext;
  private readonly ws: TaggedSocket;
  private readonly socket: Duplex;
  private readonly log: Logger;
  /** enforcer decides, pins, limits, redacts and filters for this session; the splice only carries. */
  private readonly enforcer: SessionEnforcer;
  private state = OPENING;
  private audit!: SessionAudit;
  private readonly gate: AuditGate<RequestKey>;
  private auditRefusalLogged = false;
  private openTimer: NodeJS.Timeout | undefined;
  private expiry: ExpiryWatch | undefined;
  silentTicks = 0;

  private readonly flow: SessionFlow;
  /** upTurns and downTurns share the relay fairly among sessions: a burst is handled a turn's budget at a time. */
  private readonly upTurns: TurnQueue<Buffer | BinaryMessage>;
  private readonly downTurns: TurnQueue<Buffer>;
  private readonly agentRequests = new Map<RequestKey, number>();
  private readonly serverRequests = new Map<RequestKey, number>();
  /** resume is what the agent asked: a resume credential (`offer`), or to resume `token`'s session. */
  private readonly resume: { readonly offer: true; readonly token?: ResumeToken } | undefined;
  /** resumable is set once the connector gave this session a resume credential. */
  private resumable = false;
  /** pinWait holds the agent's messages while the relay lists the server's tools itself (pinning a call made before any list). */
  private pinWait: Buffer[] | undefined;
  /** relayLists are the ids of the relay's own tools/list requests in flight, and the pages fetched. */
  private readonly relayLists = new Set<RequestKey>();
  private relayListPages = 0;
  private events = 0;
  /** setupStart is when the accepted upgrade started the session (for the setup histogram). */
  private setupStart = 0;
  /** span is the session's span; callSpans the open tools/call spans by request (only when tracing). */
  private span: Span | undefined;
  private callSpans: Map<RequestKey, Span> | undefined;
  private relayListTimer: NodeJS.Timeout | undefined;

  constructor(init: {
    ctx: SessionContext;
    ws: WebSocket;
    socket: Duplex;
    agent: PeerIdentity;
    server: string;
    scope: PolicyScope;
    link: SessionHost;
    resume?: { readonly offer: true; readonly token?: ResumeToken };
  }) {
    this.ctx = init.ctx;
    this.resume = init.resume;
    this.ws = init.ws as TaggedSocket;
    this.socket = init.socket;
    this.agent = init.agent;
    this.server = init.server;
    this.link = init.link;
    // The enforcer reads the session's identity as it is now (a REAUTH replaces it).
    const self = this;
    this.enforcer = new SessionEnforcer(
      init.ctx.enforcement,
      {
        server: init.server,
        get agent() {
          return self.agent;
        },
        connectorId: init.link.peer.id.toString(),
        unknownToolStyle: init.ctx.unknownToolReply,
        notify: (text) => this.notifyAgent(text),
        close: (code, reason) => this.close(code, reason, true, false),
      },
      init.scope,
    );
    this.flow = new SessionFlow({
      ws: init.ws,
      socket: init.socket,
      link: init.link,
      limits: { window: init.ctx.limits.sessionWindowBytes, maxMessageBytes: init.ctx.limits.maxMessageBytes },
      onOverflow: () => this.close(CloseCode.SESSION_OVERFLOW, 'session buffer overflow: the server is not keeping up', true, false),
    });
    // Both directions of a session take small turns once another session has messages too.
    const turns = new TurnGroup();
    this.upTurns = new TurnQueue<Buffer | BinaryMessage>(
      (m) => (Buffer.isBuffer(m) ? this.handleAgentMessage(m, false) : this.handleAgentMessage(m.binary, true)),
      {
        // A backlog of a read or two waits without pausing; past the agent high-water mark, reading stops.
        aboveBytes: AGENT_WRITE_HIGH_WATER,
        bytes: (m) => (Buffer.isBuffer(m) ? m.length : m.binary.length),
        on: (held) => this.flow.holdForTurn(held),
      },
      turns,
    );
    this.downTurns = new TurnQueue<Buffer>((m) => this.serverData(m), undefined, turns);
    // In audit.durability strict, recorded requests wait here (in order) until their record is durable.
    this.gate = new AuditGate<RequestKey>({
      send: (data) => this.flow.sendUp(data),
      hold: (on) => this.flow.holdAgent(on),
      refused: (key) => this.auditRefused(key),
      onOverflow: () => this.close(CloseCode.SESSION_OVERFLOW, 'session buffer overflow: the audit trail is not keeping up', true, false),
      holdAboveBytes: init.ctx.limits.sessionWindowBytes,
      maxBytes: init.ctx.limits.sessionWindowBytes + init.ctx.limits.maxMessageBytes,
    });
    this.log = init.ctx.logger.child({ server: init.server, peer: init.agent.id.toString() });
  }

  /** start wires the agent socket, asks the connector to open the backend session, and audits. */
  start(): void {
    this.setupStart = performance.now();
    const ws = this.ws;
    ws[kSession] = this;
    ws.on('message', onAgentMessage);
    ws.on('close', onAgentClose);
    ws.on('error', onAgentError);
    ws.on('pong', onAgentPong);
    const token = this.resume?.token;
    const tracing = this.ctx.tracing;
    if (tracing.enabled) {
      this.span = tracing.span(`mcp.session ${this.server}`, {
        kind: SpanKind.SERVER,
        attributes: { 'switchboard.server': this.server, 'switchboard.agent': this.agent.id.toString(), 'switchboard.connector': this.link.peer.id.toString(), 'switchboard.resumed': token !== undefined },
      });
    }
    const traceparent = tracing.traceparent(this.span);
    const trace = traceparent === undefined ? undefined : { traceparent };
    // A resumed session keeps its backend: no new JWT-SVID for it, the connector re-attaches it.
    this.sessionId =
      token !== undefined
        ? this.link.attach(this, undefined, { resume: { id: token.id, secret: token.secret }, ...trace })
        : this.link.attach(this, this.ctx.enforcement.backendToken(this.enforcer.scope.snapshot, this.agent.id, this.server), this.resume ? { resumable: true, ...trace } : trace);
    this.flow.sessionId = this.sessionId;
    this.enforcer.start();
    this.audit = new SessionAudit(this.ctx.audit, {
      linkId: this.link.linkId,
      sessionNumber: this.sessionId,
      server: this.server,
      agent: this.agent,
      connector: this.link.peer,
    });
    this.ctx.metrics.sessionsOpen++;
    this.ctx.metrics.sessionsOpenedTotal++;
    this.span?.setAttribute('mcp.session.id', this.audit.sessionId);
    if (token !== undefined) this.audit.resumed(token.id);
    else this.audit.opened();
    this.openTimer = setTimeout(onOpenTimeout, this.ctx.limits.openTimeoutMs, this);
    this.expiry = watchExpiry(this.agent.expiresAt, () => this.expired());
    this.log.debug({ sessionId: this.sessionId, linkId: this.link.linkId }, 'session opening');
  }

  /** isOpening reports whether OPEN_OK or OPEN_FAIL is still awaited. */
  get isOpening(): boolean {
    return this.state === OPENING;
  }

  /** isClosed reports whether the session has ended. */
  get isClosed(): boolean {
    return this.state === CLOSED;
  }

  // ---------------------------------------------------------------- agent → server

  /** @internal takes one WebSocket message from the agent: handled in its turn (TurnQueue). */
  receiveAgentMessage(data: Buffer, isBinary: boolean): void {
    this.upTurns.push(isBinary ? { binary: data } : data);
  }

  /** handleAgentMessage handles one WebSocket message from the agent. */
  private handleAgentMessage(data: Buffer, isBinary: boolean): void {
    this.silentTicks = 0;
    if (this.state === CLOSED) return;
    if (this.pinWait !== undefined && !isBinary) {
      // The relay is listing the server's tools: keep the agent's order (its socket is paused).
      this.pinWait.push(data);
      return;
    }
    if (isBinary) {
      // The one binary message an agent may send is REAUTH (docs/protocol.md); anything else closes.
      if (this.reauth(data)) return;
      this.deny('binary_frame');
      this.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not accepted: one JSON-RPC message per text frame', true, false);
      return;
    }
    if (this.ctx.policy.current !== this.enforcer.scope.snapshot && !this.refreshScope()) return;
    const code = scanMessage(data, this.ctx.limits.maxDepth, shape);
    if (code !== JsonScanError.OK) {
      if (code === JsonScanError.SYNTAX) return this.refuse('parse_error', PARSE_ERROR);
      if (code === JsonScanError.DEPTH) return this.refuse('too_deep', TOO_DEEP);
      return this.refuse('duplicate_key', DUPLICATE_KEY);
    }
    if (shape.top !== JsonType.OBJECT) {
      if (shape.top === JsonType.ARRAY) return this.refuse('batch', BATCH_REFUSED);
      return this.refuse('invalid_request', NOT_JSON_RPC);
    }
    switch (classify(data, shape)) {
      case MessageKind.REQUEST:
        this.agentRequest(data);
        return;
      case MessageKind.NOTIFICATION:
        if (!isNotificationMethod(data, shape)) {
          this.deny('invalid_request');
          return;
        }
        // A cancelled request gets no response (MCP): stop waiting for one, so its id is freed.
        if (methodIs(data, shape, Methods.cancelled)) {
          const cancelled = forget(this.agentRequests, data);
          if (cancelled !== undefined) {
            this.audit.aborted(cancelled);
            this.enforcer.settle(cancelled);
          }
        }
        this.ctx.metrics.forwardedUp++;
        this.sendUp(data);
        return;
      case MessageKind.RESPONSE: {
        const key = requestKey(data, shape.id);
        if (key === undefined || !this.serverRequests.delete(key)) {
          this.deny('unknown_response_id');
          return;
        }
        this.ctx.metrics.forwardedUp++;
        this.sendUp(data);
        return;
      }
      default:
        this.refuse('invalid_request', NOT_JSON_RPC);
    }
  }

  private agentRequest(data: Buffer): void {
    const key = requestKey(data, shape.id);
    if (key === undefined) return this.refuse('invalid_request', NOT_JSON_RPC);
    if (this.agentRequests.has(key)) return this.refuse('id_in_flight', ID_IN_FLIGHT);
    if (this.agentRequests.size >= MAX_IN_FLIGHT) {
      this.deny('too_many_in_flight');
      this.replyToAgent(tooManyInFlightReply(keyJson(key), MAX_IN_FLIGHT));
      return;
    }
    const kind = requestKind(data, shape);
    let stored: Promise<unknown> | undefined;
    if (kind === Req.TOOLS_CALL && this.enforcer.wantsToolList(data, shape)) {
      // A call before any tools/list: the relay lists (and pins) the tools first, then decides it.
      this.pinWait = [data];
      this.flow.holdForPins(true);
      this.listToolsForPins(undefined);
      return;
    }
    if (kind === Req.PLAIN && !isForwardedPlain(data, shape)) {
      // A method the relay does not know: refused (like a method the server lacks) unless a rule allows it.
      const method = spanString(data, shape.method);
      if (!this.ctx.audit.available) {
        this.deny('audit_unavailable');
        this.replyToAgent(auditUnavailableReply(keyJson(key)));
        return;
      }
      const d = this.enforcer.scope.method(method);
      stored = this.audit.request('agent-to-server', key, spanRaw(data, shape.id), method, null, d, null);
      if (!d.allow) {
        this.deny('method_denied');
        this.replyToAgent(methodNotFoundReply(keyJson(key)));
        return;
      }
    } else if (kind !== Req.PLAIN) {
      if (isGoverned(kind) && !this.ctx.audit.available) {
        this.deny('audit_unavailable');
        this.replyToAgent(auditUnavailableReply(keyJson(key)));
        return;
      }
      // Parsed at most once, by whichever of enforcement and the audit record needs it first.
      const params = RequestParams.of(data, shape);
      // Policy, pinning, argument constraints, rate limits; lists pass and are filtered on the way back.
      const a = this.enforcer.admit(data, shape, kind, key, params);
      // Recorded with the final decision; in strict mode an allowed call waits for `stored`.
      if (a.record) {
        stored = this.audit.request('agent-to-server', key, spanRaw(data, shape.id), a.method, a.name, a.decision, kind === Req.TOOLS_CALL ? params : null);
      }
      const callSpan = kind === Req.TOOLS_CALL && this.span !== undefined ? this.callSpan(params, a.name, a.decision, key) : undefined;
      if (!a.ok) {
        endSpan(callSpan, a.decision.reason);
        this.deny(a.deny);
        this.replyToAgent(a.reply);
        return;
      }
      if (a.payload !== undefined) data = a.payload;
      if (callSpan !== undefined && params !== null) {
        (this.callSpans ??= new Map()).set(key, callSpan);
        data = withTraceparent(data, params, this.ctx.tracing.traceparent(callSpan) as string);
      }
    }
    this.agentRequests.set(key, kind);
    this.ctx.metrics.forwardedUp++;
    if (stored === undefined) this.sendUp(data);
    else this.gate.sendAfter(data, stored, key);
  }

  /**
   * callSpan starts the span of one tools/call: a child of the agent's own trace when the request
   * carries a valid `params._meta.traceparent`, else of the session's span.
   */
  private callSpan(params: RequestParams | null, name: string | null, decision: Decision, key: RequestKey): Span | undefined {
    const meta = params?.value._meta as { traceparent?: unknown } | undefined;
    const parent = typeof meta === 'object' && meta !== null && validTraceparent(meta.traceparent) ? meta.traceparent : this.span;
    return this.ctx.tracing.span(`tools/call ${name ?? ''}`.trim(), {
      parent,
      kind: SpanKind.SERVER,
      attributes: {
        'mcp.method.name': 'tools/call',
        'gen_ai.tool.name': name ?? '',
        'jsonrpc.request.id': keyJson(key),
        'mcp.session.id': this.audit.sessionId,
        'switchboard.server': this.server,
        'switchboard.agent': this.agent.id.toString(),
        'switchboard.decision': decision.allow ? 'allow' : 'deny',
        'switchboard.rule': decision.ruleId ?? '',
      },
    });
  }

  private endCallSpan(key: RequestKey, error: string | undefined): void {
    const span = this.callSpans?.get(key);
    if (span === undefined) return;
    this.callSpans?.delete(key);
    endSpan(span, error);
  }

  /** listToolsForPins sends the relay's own tools/list (page `cursor`) to the server. */
  private listToolsForPins(cursor: string | undefined): void {
    let id = `switchboard-pins-${this.sessionId}-${this.relayListPages}`;
    while (this.agentRequests.has(id)) id += '-';
    this.relayListPages++;
    this.relayLists.add(id);
    this.agentRequests.set(id, Req.TOOLS_LIST);
    this.enforcer.listTools(id, cursor !== undefined);
    // A server that does not answer its tools/list does not hold the agent for ever: after
    // limits.openTimeoutMs the held messages go on (a call then meets an unlisted tool: refused).
    if (this.relayListTimer !== undefined) clearTimeout(this.relayListTimer);
    this.relayListTimer = setTimeout(() => this.releasePinWait(), this.ctx.limits.openTimeoutMs);
    this.relayListTimer.unref();
    this.sendUp(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list', ...(cursor !== undefined ? { params: { cursor } } : {}) }), 'utf8'));
  }

  /** relayListAnswered takes the server's answer to the relay's own tools/list: pinned and filtered, never forwarded. */
  private relayListAnswered(key: RequestKey, buf: Buffer, len: number): void {
    this.relayLists.delete(key);
    this.agentRequests.delete(key);
    let next: string | undefined;
    if (shape.result.type === JsonType.OBJECT) {
      this.enforcer.response(key, buf, shape);
      const c = (JSON.parse(buf.toString('utf8')) as { result?: { nextCursor?: unknown } }).result?.nextCursor;
      if (typeof c === 'string') next = c;
    } else {
      this.enforcer.settle(key);
    }
    this.flow.drop(len);
    if (next !== undefined && this.relayListPages < MAX_RELAY_LIST_PAGES) {
      this.listToolsForPins(next);
      return;
    }
    this.releasePinWait();
  }

  /** releasePinWait ends the relay's own listing (answered, or timed out): the held agent messages go on, in order. */
  private releasePinWait(): void {
    if (this.relayListTimer !== undefined) clearTimeout(this.relayListTimer);
    this.relayListTimer = undefined;
    // An answer that never came: its id is forgotten (a late one is then dropped as unknown).
    for (const key of this.relayLists) {
      this.agentRequests.delete(key);
      this.enforcer.settle(key);
    }
    this.relayLists.clear();
    const held = this.pinWait ?? [];
    this.pinWait = undefined;
    if (this.state === CLOSED) return;
    this.flow.holdForPins(false);
    // In order, ahead of what arrived meanwhile, and within the session's turns.
    this.upTurns.prepend(held);
  }

  /** auditRefused answers a request whose audit record could not be stored: -32050, never forwarded (fail closed). */
  private auditRefused(key: RequestKey): void {
    if (this.state === CLOSED) return;
    this.agentRequests.delete(key);
    this.audit.forget(key);
    this.enforcer.settle(key);
    this.ctx.metrics.forwardedUp--;
    this.deny('audit_unavailable');
    if (!this.auditRefusalLogged) {
      this.auditRefusalLogged = true;
      this.log.warn({ sessionId: this.sessionId }, 'call refused: the audit trail cannot record it (fail closed)');
    }
    this.replyToAgent(auditUnavailableReply(keyJson(key)));
  }

  private refuse(reason: DenyReason, reply: Buffer): void {
    this.deny(reason);
    this.replyToAgent(reply);
  }

  private deny(reason: DenyReason): void {
    this.ctx.metrics.denied[reason]++;
  }

  // ---------------------------------------------------------------- server → agent

  /** @internal takes one DATA payload from the connector: handled in its turn (TurnQueue). */
  handleServerData(buf: Buffer): void {
    this.downTurns.push(buf);
  }

  /** serverData handles one DATA payload from the connector. */
  private serverData(buf: Buffer): void {
    if (this.state === CLOSED) return;
    if (this.ctx.policy.current !== this.enforcer.scope.snapshot && !this.refreshScope()) return;
    const len = buf.length;
    if (len > this.ctx.limits.maxServerMessageBytes) {
      this.close(CloseCode.MESSAGE_TOO_BIG, 'server message exceeds limits.maxServerMessageBytes', true, false);
      return;
    }
    if (!isUtf8(buf) || scanMessage(buf, this.ctx.limits.maxDepth, shape) !== JsonScanError.OK || shape.top !== JsonType.OBJECT) {
      this.dropDown('invalid_server_message', len);
      return;
    }
    switch (classify(buf, shape)) {
      case MessageKind.RESPONSE: {
        const key = requestKey(buf, shape.id);
        const kind = key === undefined ? undefined : this.agentRequests.get(key);
        if (kind === undefined) {
          this.dropDown('unknown_response_id', len);
          return;
        }
        if (this.relayLists.has(key as RequestKey)) {
          this.relayListAnswered(key as RequestKey, buf, len);
          return;
        }
        this.agentRequests.delete(key as RequestKey);
        if (kind === Req.PLAIN) {
          this.audit.responded(key as RequestKey, buf, shape, len);
          this.sendDown(buf, len);
          return;
        }
        if (this.callSpans !== undefined) this.endCallSpan(key as RequestKey, shape.error.type === JsonType.OBJECT ? 'the server answered with an error' : undefined);
        // Lists filtered (pinning, policy), results redacted, rate-limit slots released.
        const out = this.enforcer.response(key as RequestKey, buf, shape);
        const bytes = typeof out.payload === 'string' ? Buffer.byteLength(out.payload) : out.payload.length;
        this.audit.responded(key as RequestKey, buf, shape, bytes, out.redactions);
        this.sendDown(out.payload, len);
        return;
      }
      case MessageKind.REQUEST:
        this.serverRequest(buf, len);
        return;
      case MessageKind.NOTIFICATION:
        if (!isNotificationMethod(buf, shape)) {
          this.dropDown('invalid_server_message', len);
          return;
        }
        if (methodIs(buf, shape, Methods.cancelled)) forget(this.serverRequests, buf);
        this.sendDown(buf, len);
        return;
      default:
        this.dropDown('invalid_server_message', len);
    }
  }

  private serverRequest(buf: Buffer, len: number): void {
    const key = requestKey(buf, shape.id) as RequestKey;
    const governed = governedKind(buf);
    if (governed === undefined && !methodIs(buf, shape, Methods.ping)) {
      this.replyToServer(methodNotFoundReply(keyJson(key)));
      this.dropDown('server_request_denied', len);
      return;
    }
    if (governed !== undefined) {
      const [kind, method] = governed;
      if (!this.ctx.audit.available) {
        // Fail closed: a request that cannot be recorded is not passed on.
        this.replyToServer(auditUnavailableReply(keyJson(key)));
        this.dropDown('audit_unavailable', len);
        return;
      }
      const d = this.enforcer.scope.serverRequest(kind);
      this.audit.request('server-to-agent', key, spanRaw(buf, shape.id), method, null, d, null);
      if (!d.allow) {
        this.replyToServer(serverRequestDeniedReply(keyJson(key), method));
        this.dropDown('server_request_denied', len);
        return;
      }
    }
    if (this.serverRequests.has(key)) {
      this.dropDown('id_in_flight', len);
      return;
    }
    if (this.serverRequests.size >= MAX_IN_FLIGHT) {
      this.replyToServer(tooManyInFlightReply(keyJson(key), MAX_IN_FLIGHT));
      this.dropDown('too_many_in_flight', len);
      return;
    }
    this.serverRequests.set(key, 0);
    this.sendDown(buf, len);
  }

  /** notifyAgent writes a notification the relay composed (list_changed) to the agent. */
  private notifyAgent(text: string): void {
    if (this.state === CLOSED) return;
    this.ctx.metrics.forwardedDown++;
    this.flow.reply(text);
  }

  private replyToServer(text: string): void {
    this.sendUp(Buffer.from(text, 'utf8'));
  }

  private sendUp(data: Buffer): void {
    this.gate.send(data);
  }

  private replyToAgent(text: string | Buffer): void {
    this.flow.reply(text);
  }

  private sendDown(payload: Buffer | string, creditBytes: number): void {
    if (this.flow.sendDown(payload, creditBytes)) this.ctx.metrics.forwardedDown++;
  }

  private dropDown(reason: DenyReason, creditBytes: number): void {
    this.deny(reason);
    this.flow.drop(creditBytes);
  }

  // ---------------------------------------------------------------- link events

  /** @internal OPEN_OK: the backend session is ready; queued agent messages go out. */
  handleOpenOk(payload: OpenOkPayload = {}): void {
    if (this.resume?.token !== undefined && payload.resumed !== true) {
      // A connector that opened a new backend instead of the one asked for: not what the agent wants.
      this.close(CloseCode.RESUME_REFUSED, 'the connector did not resume the session', true, false);
      return;
    }
    this.state = OPEN;
    this.ctx.metrics.sessionSetup.observe({ result: payload.resumed === true ? 'resumed' : 'ok' }, (performance.now() - this.setupStart) / 1000);
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = undefined;
    this.log.debug({ sessionId: this.sessionId, resumed: payload.resumed === true }, 'session open');
    if (this.resume !== undefined && payload.resume !== undefined) {
      // The agent's resume token: the connector's credential and where the session lives.
      this.resumable = true;
      const token = encodeResumeToken({ connector: this.link.peer.id.toString(), server: this.server, id: payload.resume.id, secret: payload.resume.secret });
      this.ws.send(JSON.stringify({ type: 'session', resumed: payload.resumed === true, token, graceMs: payload.resume.graceMs }), BINARY);
    }
    this.flow.opened();
  }

  /** @internal OPEN_FAIL: the backend could not start; the agent gets the connector's code. */
  handleOpenFail(code: unknown, reason: unknown): void {
    this.close(sendableCloseCode(code, CloseCode.BACKEND_FAILED), closeReason(reason) || 'backend failed to start', false, false);
  }

  /** @internal WINDOW: the connector returns credit. */
  handleWindow(increment: number): void {
    this.flow.window(increment);
  }

  /** @internal CLOSE from the connector: answer what is outstanding, then close the agent. */
  handleServerClose(code: unknown, reason: unknown): void {
    // What the connector sent before its CLOSE reaches the agent first.
    this.downTurns.flush();
    this.close(sendableCloseCode(code, CloseCode.BACKEND_FAILED), closeReason(reason) || 'backend session ended', false, true);
  }

  /**
   * @internal EVENT from the connector: `egress.denied` goes to the audit trail, at most
   * {@link MAX_EVENTS_PER_SESSION} per session (a server that floods refused destinations cannot
   * flood the trail; the rest are counted in the log).
   */
  handleEvent(event: EventPayload): void {
    if (this.state === CLOSED) return;
    if (this.events >= MAX_EVENTS_PER_SESSION) {
      if (this.events++ === MAX_EVENTS_PER_SESSION) this.log.warn({ server: this.server }, `more than ${MAX_EVENTS_PER_SESSION} egress denials in one session: the rest are not recorded`);
      return;
    }
    this.events++;
    this.ctx.metrics.egressDenied++;
    this.audit.egressDenied(event.destination, event.port, event.reason);
  }

  /**
   * @internal the link is gone: close with 4509 (lost: the connector may keep the session for a
   * resume), or 4503 when the relay closed the link for its connector's sake (its sessions end there).
   */
  handleLinkLost(resumable: boolean): void {
    this.downTurns.flush();
    if (resumable) this.close(CloseCode.LINK_LOST, 'connector link lost', false, true);
    else this.close(CloseCode.NO_CONNECTOR, 'the connector link was closed', false, true);
  }

  /** @internal heartbeat: ping the agent; terminate after too many silent periods. */
  tick(idleTicks: number): void {
    if (this.state === CLOSED) return;
    // A paused socket is not read, so its pongs are not seen: it is not idle, it is flow-controlled.
    if (this.flow.paused) {
      this.silentTicks = 0;
      return;
    }
    if (++this.silentTicks > idleTicks) {
      this.log.info({ sessionId: this.sessionId }, 'agent silent; terminating');
      this.ws.terminate();
      return;
    }
    this.ws.ping();
  }

  private expired(): void {
    this.ctx.metrics.expiryCloses++;
    this.log.info({ sessionId: this.sessionId, expiresAt: this.agent.expiresAt.toISOString() }, 'agent certificate expired; closing its session');
    this.close(CloseCode.IDENTITY_EXPIRED, `agent certificate expired at ${this.agent.expiresAt.toISOString()}`, true, false);
  }

  /**
   * reauth handles a binary REAUTH message (`{ type: 'reauth', chain, proof }`): a renewed SVID
   * proven on this connection moves the session to the new certificate (its expiry, its serial,
   * the scope rebuilt for it). Returns false when `data` is not a REAUTH message at all.
   */
  private reauth(data: Buffer): boolean {
    let message: unknown;
    try {
      message = JSON.parse(data.toString('utf8'));
    } catch {
      return false;
    }
    if (typeof message !== 'object' || message === null || (message as { type?: unknown }).type !== 'reauth') return false;
    let payload;
    try {
      payload = checkReauthPayload(message);
    } catch (err) {
      this.ws.send(JSON.stringify({ type: 'reauth_result', ok: false, reason: (err as Error).message }), BINARY);
      return true;
    }
    const { answer, next } = judgeReauth(this.ctx, this.socket as TLSSocket, payload, this.agent, `session:${this.sessionId}`);
    if (next !== undefined) {
      this.agent = next;
      this.expiry?.cancel();
      this.expiry = watchExpiry(next.expiresAt, () => this.expired());
      // The scope is built from the identity (its serial): rebuild it for the new certificate.
      this.enforcer.policyChanged();
      if (this.state === CLOSED) return true;
      this.log.info({ sessionId: this.sessionId, notAfter: answer.notAfter }, 'agent re-authenticated with a renewed certificate');
    } else {
      this.log.warn({ sessionId: this.sessionId, reason: answer.reason }, 'agent re-authentication refused');
    }
    this.ws.send(JSON.stringify({ type: 'reauth_result', ...answer }), BINARY);
    return true;
  }

  /** refreshScope re-checks the session against a new policy: closed with 4401 (revoked) or 4403 (withdrawn), else kept. */
  private refreshScope(): boolean {
    this.enforcer.policyChanged();
    return this.state !== CLOSED;
  }

  /**
   * close ends the session from the relay's side: optionally tells the connector (CLOSE) and
   * answers outstanding agent requests with -32051, then closes the agent WebSocket with `code`.
   */
  close(code: number, reason: string, notifyConnector: boolean, answerOutstanding: boolean): void {
    if (this.state === CLOSED) return;
    if (this.state === OPENING && this.setupStart !== 0) this.ctx.metrics.sessionSetup.observe({ result: 'failed' }, (performance.now() - this.setupStart) / 1000);
    this.state = CLOSED;
    if (notifyConnector) this.link.sendClose(this.sessionId, code, reason);
    this.link.detach(this);
    const ws = this.ws;
    if (ws.readyState === WebSocket.OPEN) {
      if (answerOutstanding && this.agentRequests.size > 0) {
        coalesce(this.socket);
        for (const key of this.agentRequests.keys()) ws.send(backendUnavailableReply(keyJson(key)), TEXT);
      }
      ws.close(code, reason);
    }
    this.finish(code, reason);
  }

  /** @internal protocolClose is the close `ws` sent for a protocol error it found (1009, 1007, 1002). */
  protocolClose: ProtocolClose | undefined;

  /** @internal the agent closed (or the socket died, or ws closed it for a protocol error). */
  handleAgentClose(code: number, reason: Buffer): void {
    if (this.state === CLOSED) return;
    // What the agent sent before it closed goes on first, as it would have without the turns.
    this.upTurns.flush();
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    const sent = closeAsSent(code, reason.toString('utf8'), this.protocolClose);
    // The agent's connection was lost, not closed: a resumable session waits at the connector.
    if (this.resumable && code === 1006 && this.protocolClose === undefined) this.link.sendClose(this.sessionId, CloseCode.LINK_LOST, 'agent connection lost');
    else this.link.sendClose(this.sessionId, CloseCode.NORMAL, 'agent closed');
    this.link.detach(this);
    this.finish(sent.code, sent.reason);
  }

  private finish(code: number, reason: string): void {
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = undefined;
    if (this.relayListTimer !== undefined) clearTimeout(this.relayListTimer);
    this.expiry?.cancel();
    this.flow.end();
    this.upTurns.end();
    this.downTurns.end();
    this.gate.end();
    this.enforcer.end();
    this.agentRequests.clear();
    this.serverRequests.clear();
    if (this.callSpans !== undefined) for (const k of [...this.callSpans.keys()]) this.endCallSpan(k, 'the session ended first');
    endSpan(this.span, code === 1000 || code === 1001 ? undefined : `closed ${code}${reason ? `: ${reason}` : ''}`, { 'switchboard.close_code': code });
    const m = this.ctx.metrics;
    m.sessionsOpen--;
    m.sessionClosed(code);
    this.audit.closed(code, reason);
    this.log.debug({ sessionId: this.sessionId, code, reason }, 'session closed');
    this.ctx.sessionEnded();
  }
}

/** BinaryMessage marks a queued binary agent message (text ones are queued as the bare Buffer). */
interface BinaryMessage {
  readonly binary: Buffer;
}

function forget(outstanding: Map<RequestKey, number>, buf: Buffer): RequestKey | undefined {
  const key = cancelledRequestKey(buf);
  return key !== undefined && outstanding.delete(key) ? key : undefined;
}

const SAMPLING = Object.freeze(['sampling', Methods.sampling.plain] as const);
const ELICITATION = Object.freeze(['elicitation', Methods.elicitation.plain] as const);
const ROOTS = Object.freeze(['roots', Methods.roots.plain] as const);

/** governedKind names the policy kind of a server→agent request (of the message just scanned). */
function governedKind(buf: Buffer): readonly [ServerRequestKind, string] | undefined {
  if (methodIs(buf, shape, Methods.sampling)) return SAMPLING;
  if (methodIs(buf, shape, Methods.elicitation)) return ELICITATION;
  if (methodIs(buf, shape, Methods.roots)) return ROOTS;
  return undefined;
}

function sessionOf(ws: WebSocket): AgentSession {
  return (ws as TaggedSocket)[kSession] as AgentSession;
}

function onAgentMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  sessionOf(this).receiveAgentMessage(data, isBinary);
}

function onAgentClose(this: WebSocket, code: number, reason: Buffer): void {
  sessionOf(this).handleAgentClose(code, reason);
}

function onAgentError(this: WebSocket, err: Error): void {
  // ws closes the connection itself (1009 too big, 1007 invalid UTF-8, 1002 bad framing); the
  // 'close' event that follows ends the session, with the code ws sent kept for the record.
  const session = sessionOf(this);
  session.protocolClose ??= protocolCloseOf(err);
}

function onAgentPong(this: WebSocket): void {
  sessionOf(this).silentTicks = 0;
}

function onOpenTimeout(session: AgentSession): void {
  if (!session.isOpening) return;
  session.close(CloseCode.OPEN_TIMEOUT, 'the connector did not open the backend session in time', true, false);
}
