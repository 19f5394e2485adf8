import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import type { SpiffeId } from '@switchboard/pki';
import { CloseCode } from '@switchboard/protocol';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { AuditSessionRef } from '../audit/records.js';
import { coalesce } from '../internal/cork.js';
import { isPlainObject } from '../internal/schema.js';
import { JsonScanError, JsonType, MessageShape, scanMessage, spanRaw, spanString } from '../internal/strict-json.js';
import type { DenyReason } from '../metrics.js';
import { PolicyScope } from '../policy/decide.js';
import type { ServerRequestKind } from '../policy/document.js';
import { isoNow, type RelayContext } from './context.js';
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
} from './jsonrpc.js';
import { SessionFlow } from './flow.js';
import type { ConnectorLink } from './link.js';
import {
  BATCH_REFUSED,
  DUPLICATE_KEY,
  ID_IN_FLIGHT,
  NOT_JSON_RPC,
  PARSE_ERROR,
  TOO_DEEP,
  auditUnavailableReply,
  backendUnavailableReply,
  invalidParamsReply,
  methodNotFoundReply,
  serverRequestDeniedReply,
  tooManyInFlightReply,
  unknownToolReply,
} from './replies.js';

/** MAX_IN_FLIGHT bounds the outstanding requests per session and direction. */
export const MAX_IN_FLIGHT = 4096;

const OPENING = 0;
const OPEN = 1;
const CLOSED = 2;

const REQ_PLAIN = 0;
const REQ_TOOLS_LIST = 1;

const TEXT = Object.freeze({ binary: false });
const MAX_REASON_BYTES = 120;
const MAX_AUDIT_NAME = 256;

// One scan result shared by every session: scanning and reading the spans happen in one
// synchronous stretch, before anything else can scan.
const shape = new MessageShape();

const kSession = Symbol('switchboard.agentSession');
type TaggedSocket = WebSocket & { [kSession]?: AgentSession };

/** PeerIdentity is an authenticated peer: its SPIFFE ID and its certificate's serial number. */
export interface PeerIdentity {
  readonly id: SpiffeId;
  /** certSerial is the leaf certificate's serial number, hex. */
  readonly certSerial: string;
}

/** sendableCloseCode maps a code from the wire to one a WebSocket close frame may carry, else `fallback`. */
export function sendableCloseCode(code: unknown, fallback: number): number {
  if (typeof code !== 'number' || !Number.isInteger(code)) return fallback;
  if (code === 1000 || code === 1001 || code === 1002 || code === 1003) return code;
  if (code >= 1007 && code <= 1014) return code;
  if (code >= 3000 && code <= 4999) return code;
  return fallback;
}

/** truncateReason keeps a close reason within the 123 bytes a close frame allows. */
export function truncateReason(reason: unknown): string {
  const s = typeof reason === 'string' ? reason : '';
  if (Buffer.byteLength(s) <= MAX_REASON_BYTES) return s;
  let out = s.slice(0, MAX_REASON_BYTES);
  while (Buffer.byteLength(out) > MAX_REASON_BYTES - 3) out = out.slice(0, -1);
  return `${out}...`;
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}

/**
 * AgentSession is one agent WebSocket spliced onto one connector-link session. It is the policy
 * enforcement point: every agent message is scanned strictly and decided on its `method` and
 * `params.name`; server messages are matched to outstanding requests, `tools/list` results are
 * filtered, server→agent requests pass only where policy allows. Messages that pass unchanged are
 * forwarded as their original bytes. Flow control is delegated to {@link SessionFlow}.
 */
export class AgentSession {
  /** sessionId is the id on the link, assigned by {@link ConnectorLink.attach}. */
  sessionId = 0;
  readonly server: string;
  readonly agent: PeerIdentity;
  readonly link: ConnectorLink;
  private readonly ctx: RelayContext;
  private readonly ws: TaggedSocket;
  private readonly socket: Duplex;
  private readonly log: Logger;
  private scope: PolicyScope;
  private state = OPENING;
  private ref!: AuditSessionRef;
  private readonly startedAt = Date.now();
  private openTimer: NodeJS.Timeout | undefined;
  silentTicks = 0;

  private readonly flow: SessionFlow;
  private readonly agentRequests = new Map<RequestKey, number>();
  private readonly serverRequests = new Map<RequestKey, number>();

  constructor(init: {
    ctx: RelayContext;
    ws: WebSocket;
    socket: Duplex;
    agent: PeerIdentity;
    server: string;
    scope: PolicyScope;
    link: ConnectorLink;
  }) {
    this.ctx = init.ctx;
    this.ws = init.ws as TaggedSocket;
    this.socket = init.socket;
    this.agent = init.agent;
    this.server = init.server;
    this.scope = init.scope;
    this.link = init.link;
    this.flow = new SessionFlow({
      ws: init.ws,
      socket: init.socket,
      link: init.link,
      limits: { window: init.ctx.limits.sessionWindowBytes, maxMessageBytes: init.ctx.limits.maxMessageBytes },
      onOverflow: () => this.close(CloseCode.SESSION_OVERFLOW, 'session buffer overflow: the server is not keeping up', true, false),
    });
    this.log = init.ctx.logger.child({ server: init.server, peer: init.agent.id.toString() });
  }

  /** start wires the agent socket, asks the connector to open the backend session, and audits. */
  start(): void {
    const ws = this.ws;
    ws[kSession] = this;
    ws.on('message', onAgentMessage);
    ws.on('close', onAgentClose);
    ws.on('error', onAgentError);
    ws.on('pong', onAgentPong);
    this.sessionId = this.link.attach(this);
    this.flow.sessionId = this.sessionId;
    this.ref = {
      sessionId: this.sessionId,
      linkId: this.link.linkId,
      agent: this.agent.id.toString(),
      connector: this.link.peer.id.toString(),
      server: this.server,
      certSerial: this.agent.certSerial,
    };
    this.ctx.metrics.sessionsOpen++;
    this.ctx.metrics.sessionsOpenedTotal++;
    this.ctx.audit.write({ type: 'session.open', time: isoNow(), ...this.ref });
    this.openTimer = setTimeout(onOpenTimeout, this.ctx.limits.openTimeoutMs, this);
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

  /** @internal handles one WebSocket message from the agent. */
  handleAgentMessage(data: Buffer, isBinary: boolean): void {
    this.silentTicks = 0;
    if (this.state === CLOSED) return;
    if (isBinary) {
      this.deny('binary_frame');
      this.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not accepted: one JSON-RPC message per text frame', true, false);
      return;
    }
    if (this.ctx.policy.current !== this.scope.snapshot && !this.refreshScope()) return;
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
        if (methodIs(data, shape, Methods.cancelled)) forget(this.agentRequests, data);
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
    let kind = REQ_PLAIN;
    if (methodIs(data, shape, Methods.toolsCall)) {
      if (shape.name.type !== JsonType.STRING) {
        this.deny('invalid_request');
        this.replyToAgent(invalidParamsReply(keyJson(key)));
        return;
      }
      const name = spanString(data, shape.name);
      const audit = this.ctx.audit;
      if (!audit.available) {
        this.deny('audit_unavailable');
        this.replyToAgent(auditUnavailableReply(keyJson(key)));
        return;
      }
      const d = this.scope.tool(name);
      audit.write({
        type: 'tool.call',
        time: isoNow(),
        ...this.ref,
        tool: clip(name, MAX_AUDIT_NAME),
        decision: d.allow ? 'allow' : 'deny',
        ruleId: d.ruleId ?? null,
        reason: clip(d.reason, 2 * MAX_AUDIT_NAME),
        requestId: clip(spanRaw(data, shape.id), MAX_AUDIT_NAME),
      });
      if (!d.allow) {
        this.deny('tool_denied');
        this.replyToAgent(unknownToolReply(this.ctx.enforcement.unknownToolReply, keyJson(key), name));
        return;
      }
    } else if (methodIs(data, shape, Methods.toolsList)) {
      kind = REQ_TOOLS_LIST;
    }
    this.agentRequests.set(key, kind);
    this.ctx.metrics.forwardedUp++;
    this.sendUp(data);
  }

  private refuse(reason: DenyReason, reply: Buffer): void {
    this.deny(reason);
    this.replyToAgent(reply);
  }

  private deny(reason: DenyReason): void {
    this.ctx.metrics.denied[reason]++;
  }

  // ---------------------------------------------------------------- server → agent

  /** @internal handles one DATA payload from the connector. */
  handleServerData(buf: Buffer): void {
    if (this.state === CLOSED) return;
    if (this.ctx.policy.current !== this.scope.snapshot && !this.refreshScope()) return;
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
        this.agentRequests.delete(key as RequestKey);
        if (kind === REQ_TOOLS_LIST && shape.result.type === JsonType.OBJECT) {
          this.sendDown(this.filterToolsList(buf), len);
        } else {
          this.sendDown(buf, len);
        }
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
      const d = this.scope.serverRequest(kind);
      this.ctx.audit.write({
        type: 'server.request',
        time: isoNow(),
        ...this.ref,
        method,
        decision: d.allow ? 'allow' : 'deny',
        ruleId: d.ruleId ?? null,
        reason: d.reason,
        requestId: clip(spanRaw(buf, shape.id), MAX_AUDIT_NAME),
      });
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

  private filterToolsList(buf: Buffer): string {
    const msg = JSON.parse(buf.toString('utf8')) as { result: Record<string, unknown> };
    const tools = msg.result.tools;
    msg.result.tools = Array.isArray(tools)
      ? tools.filter((t: unknown) => isPlainObject(t) && typeof t.name === 'string' && this.scope.tool(t.name).allow)
      : [];
    return JSON.stringify(msg);
  }

  private replyToServer(text: string): void {
    this.sendUp(Buffer.from(text, 'utf8'));
  }

  private sendUp(data: Buffer): void {
    this.flow.sendUp(data);
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
  handleOpenOk(): void {
    this.state = OPEN;
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = undefined;
    this.log.debug({ sessionId: this.sessionId }, 'session open');
    this.flow.opened();
  }

  /** @internal OPEN_FAIL: the backend could not start; the agent gets the connector's code. */
  handleOpenFail(code: unknown, reason: unknown): void {
    this.close(sendableCloseCode(code, CloseCode.BACKEND_FAILED), truncateReason(reason) || 'backend failed to start', false, false);
  }

  /** @internal WINDOW: the connector returns credit. */
  handleWindow(increment: number): void {
    this.flow.window(increment);
  }

  /** @internal CLOSE from the connector: answer what is outstanding, then close the agent. */
  handleServerClose(code: unknown, reason: unknown): void {
    this.close(sendableCloseCode(code, CloseCode.BACKEND_FAILED), truncateReason(reason) || 'backend session ended', false, true);
  }

  /** @internal the link is gone: close with 4509. */
  handleLinkLost(): void {
    this.close(CloseCode.LINK_LOST, 'connector link lost', false, true);
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

  private refreshScope(): boolean {
    this.scope = new PolicyScope(this.ctx.policy.current, this.agent.id, this.server);
    if (this.scope.session.allow) return true;
    this.close(CloseCode.FORBIDDEN, 'access to this server was withdrawn by policy', true, false);
    return false;
  }

  /**
   * close ends the session from the relay's side: optionally tells the connector (CLOSE) and
   * answers outstanding agent requests with -32051, then closes the agent WebSocket with `code`.
   */
  close(code: number, reason: string, notifyConnector: boolean, answerOutstanding: boolean): void {
    if (this.state === CLOSED) return;
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

  /** @internal the agent closed (or the socket died). */
  handleAgentClose(code: number, reason: Buffer): void {
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    this.link.sendClose(this.sessionId, CloseCode.NORMAL, 'agent closed');
    this.link.detach(this);
    this.finish(code, reason.toString('utf8'));
  }

  private finish(code: number, reason: string): void {
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = undefined;
    this.flow.end();
    this.agentRequests.clear();
    this.serverRequests.clear();
    const m = this.ctx.metrics;
    m.sessionsOpen--;
    m.sessionClosed(code);
    this.ctx.audit.write({
      type: 'session.close',
      time: isoNow(),
      ...this.ref,
      code,
      reason,
      durationMs: Date.now() - this.startedAt,
    });
    this.log.debug({ sessionId: this.sessionId, code, reason }, 'session closed');
    this.ctx.sessionEnded();
  }
}

function forget(outstanding: Map<RequestKey, number>, buf: Buffer): void {
  const key = cancelledRequestKey(buf);
  if (key !== undefined) outstanding.delete(key);
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
  sessionOf(this).handleAgentMessage(data, isBinary);
}

function onAgentClose(this: WebSocket, code: number, reason: Buffer): void {
  sessionOf(this).handleAgentClose(code, reason);
}

function onAgentError(this: WebSocket): void {
  // ws closes the connection itself (1009 too big, 1007 invalid UTF-8, 1002 bad framing); the
  // 'close' event that follows ends the session. The listener only keeps the error from throwing.
}

function onAgentPong(this: WebSocket): void {
  sessionOf(this).silentTicks = 0;
}

function onOpenTimeout(session: AgentSession): void {
  if (!session.isOpening) return;
  session.close(CloseCode.OPEN_TIMEOUT, 'the connector did not open the backend session in time', true, false);
}
