import { closeAsSent, protocolCloseOf, type ProtocolClose } from '../internal/ws-close.js';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import {
  CloseCode,
  FrameType,
  LINK_PROTOCOL_VERSION,
  LOST_LINK_CLOSES,
  LinkProtocolError,
  decodeFrame,
  encodeControl,
  encodeData,
  encodeWindow,
  type Frame,
  type WelcomePayload,
  closeReason,
  isServerName,
  type HelloPayload,
  type ReauthPayload,
  type OpenPayload,
} from '@switchboard/protocol';
import type { Logger } from '@switchboard/common';
import type { SpiffeId } from '@switchboard/pki';
import WebSocket from 'ws';
import type { AuditSink } from '../audit/sink.js';
import type { PeerAuthenticator, PeerIdentity } from '../auth/peer-auth.js';
import { watchExpiry, type ExpiryWatch } from '../auth/expiry.js';
import { judgeReauth } from '../auth/reauth.js';
import type { RelayLimits, RelayTiming } from '../config/limits.js';
import { coalesce } from '@switchboard/common';
import type { RelayMetrics } from '../metrics.js';
import type { PolicyStore } from '../policy/store.js';
import type { LinkSession, SessionHost } from './link-session.js';
import type { Registry, RoutableLink } from './registry.js';

/** LinkContext is what every connector link shares: configuration, the policy, the registry, the sinks. */
export interface LinkContext {
  readonly limits: Pick<RelayLimits, 'sessionWindowBytes'>;
  readonly timing: Pick<RelayTiming, 'helloTimeoutMs'>;
  readonly policy: PolicyStore;
  readonly registry: Registry<ConnectorLink>;
  readonly audit: AuditSink;
  readonly metrics: RelayMetrics;
  readonly logger: Logger;
  /** relayId is the relay's own SPIFFE ID, sent in WELCOME. */
  readonly relayId: SpiffeId;
  /** peerAuth checks a renewed certificate presented on the link (REAUTH). */
  readonly peerAuth: Pick<PeerAuthenticator, 'reauthenticate'>;
  /** linkEnded is called once per link after it closed. */
  linkEnded(link: ConnectorLink): void;
}

const AWAIT_HELLO = 0;
const ACTIVE = 1;
/** the connector sent GOAWAY: no new sessions; open ones drain. */
const DRAINING = 2;
const CLOSED = 3;

const MAX_SESSION_ID = 0xffffffff;
const BINARY = Object.freeze({ binary: true });

const kLink = Symbol('switchboard.link');
type TaggedSocket = WebSocket & { [kLink]?: ConnectorLink };

/**
 * ConnectorLink is one connector's WebSocket (`switchboard.v1`): HELLO/WELCOME, the sessions it
 * multiplexes, per-session frames, GOAWAY, and liveness. A framing error closes the link with
 * 1002; its sessions are then closed with 4509.
 */
export class ConnectorLink implements RoutableLink, SessionHost {
  /** linkId is a random id naming this link in WELCOME, logs and audit records. */
  readonly linkId = randomBytes(8).toString('hex');
  /** peer is the identity the link is authenticated as: the handshake's, then each accepted REAUTH's. */
  peer: PeerIdentity;
  private readonly ctx: LinkContext;
  private readonly ws: TaggedSocket;
  private readonly socket: Duplex;
  private readonly log: Logger;
  private readonly sessions = new Map<number, LinkSession>();
  private state = AWAIT_HELLO;
  private relayDraining = false;
  private nextSessionId = 1;
  private helloTimer: NodeJS.Timeout | undefined;
  private expiry: ExpiryWatch | undefined;
  private accepted: string[] = [];
  private counted = false;
  silentTicks = 0;

  constructor(ctx: LinkContext, ws: WebSocket, socket: Duplex, peer: PeerIdentity) {
    this.ctx = ctx;
    this.ws = ws as TaggedSocket;
    this.socket = socket;
    this.peer = peer;
    this.log = ctx.logger.child({ linkId: this.linkId, peer: peer.id.toString() });
  }

  /** start wires the socket and waits for HELLO. */
  start(): void {
    const ws = this.ws;
    ws[kLink] = this;
    ws.on('message', onLinkMessage);
    ws.on('close', onLinkClose);
    ws.on('error', onLinkError);
    ws.on('pong', onLinkPong);
    this.helloTimer = setTimeout(onHelloTimeout, this.ctx.timing.helloTimeoutMs, this);
    this.expiry = watchExpiry(this.peer.expiresAt, () => this.expired());
    this.log.debug({}, 'link connected; awaiting HELLO');
  }

  /** sessionCount is the number of sessions the link carries now. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** accepting is true while the registry may route new sessions here. */
  get accepting(): boolean {
    return this.state === ACTIVE && !this.relayDraining && this.nextSessionId < MAX_SESSION_ID;
  }

  /** unregister stops routing new sessions for `server` to this link (policy changed). */
  unregister(server: string): void {
    this.accepted = this.accepted.filter((s) => s !== server);
    this.ctx.registry.remove(server, this);
  }

  /** servers lists the servers WELCOME accepted. */
  get servers(): readonly string[] {
    return this.accepted;
  }

  /** isOpen reports whether the link still carries traffic. */
  get isOpen(): boolean {
    return this.state !== CLOSED;
  }

  // ---------------------------------------------------------------- sessions

  /** attach registers `session`, sends OPEN (with the backend's JWT-SVID, when given) and returns the new session id. */
  attach(session: LinkSession, jwtSvid?: string, resume?: Pick<OpenPayload, 'resumable' | 'resume' | 'traceparent'>): number {
    const id = this.nextSessionId++;
    this.sessions.set(id, session);
    const open: OpenPayload = { server: session.server, agent: session.agent.id.toString(), ...(jwtSvid !== undefined ? { jwtSvid } : {}), ...resume };
    this.send(encodeControl(FrameType.OPEN, id, open));
    return id;
  }

  /** detach forgets `session` (it has ended). */
  detach(session: LinkSession): void {
    if (this.sessions.get(session.sessionId) === session) this.sessions.delete(session.sessionId);
  }

  /** sendData sends one DATA frame for a session. */
  sendData(sessionId: number, message: Buffer): void {
    this.send(encodeData(sessionId, message));
  }

  /** sendWindow returns `increment` bytes of credit for a session. */
  sendWindow(sessionId: number, increment: number): void {
    this.send(encodeWindow(sessionId, increment));
  }

  /** sendClose tells the connector a session is over. */
  sendClose(sessionId: number, code: number, reason: string): void {
    this.send(encodeControl(FrameType.CLOSE, sessionId, { code, reason }));
  }

  private send(frame: Buffer): void {
    if (this.state === CLOSED || this.ws.readyState !== WebSocket.OPEN) return;
    coalesce(this.socket);
    this.ws.send(frame, BINARY);
  }

  // ---------------------------------------------------------------- frames

  /** @internal handles one WebSocket message from the connector. */
  handleMessage(data: Buffer, isBinary: boolean): void {
    this.silentTicks = 0;
    if (this.state === CLOSED) return;
    if (!isBinary) return this.protocolError('text frame on the link; every frame is binary');
    let frame: Frame;
    try {
      frame = decodeFrame(data);
    } catch (err) {
      if (err instanceof LinkProtocolError) return this.protocolError(err.message);
      throw err;
    }
    if (this.state === AWAIT_HELLO) {
      if (frame.type !== FrameType.HELLO) return this.protocolError('the first frame must be HELLO');
      return this.hello(frame.payload);
    }
    switch (frame.type) {
      case FrameType.DATA: {
        const s = this.session(frame.sessionId);
        if (s === undefined) return;
        if (s.isOpening) return this.protocolError(`DATA for session ${frame.sessionId} before OPEN_OK`);
        s.handleServerData(frame.data);
        return;
      }
      case FrameType.WINDOW: {
        this.session(frame.sessionId)?.handleWindow(frame.increment);
        return;
      }
      case FrameType.OPEN_OK: {
        const s = this.session(frame.sessionId);
        if (s === undefined) return;
        if (!s.isOpening) return this.protocolError(`OPEN_OK for session ${frame.sessionId} that is already open`);
        s.handleOpenOk(frame.payload);
        return;
      }
      case FrameType.OPEN_FAIL: {
        const s = this.session(frame.sessionId);
        if (s === undefined) return;
        if (!s.isOpening) return this.protocolError(`OPEN_FAIL for session ${frame.sessionId} that is already open`);
        s.handleOpenFail(frame.payload.code, frame.payload.reason);
        return;
      }
      case FrameType.CLOSE: {
        this.session(frame.sessionId)?.handleServerClose(frame.payload.code, frame.payload.reason);
        return;
      }
      case FrameType.EVENT: {
        this.session(frame.sessionId)?.handleEvent(frame.payload);
        return;
      }
      case FrameType.GOAWAY:
        this.goAwayReceived(frame.payload.reason);
        return;
      case FrameType.REAUTH:
        this.reauth(frame.payload);
        return;
      default:
        this.protocolError(`frame type 0x${frame.type.toString(16)} is not sent by a connector`);
    }
  }

  /** session returns the open session `id`; unknown-but-issued ids (already closed) are ignored. */
  private session(id: number): LinkSession | undefined {
    const s = this.sessions.get(id);
    if (s !== undefined) return s;
    if (id >= this.nextSessionId) this.protocolError(`frame for session ${id}, which was never opened`);
    return undefined;
  }

  private hello(payload: HelloPayload): void {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    const { version, servers } = payload;

    // Revocation is part of the identity's policy: a revoked connector is refused every server.
    const identity = this.ctx.policy.identity(this.peer);
    const accepted: string[] = [];
    const rejected: { server: string; reason: string }[] = [];
    for (const name of new Set(servers)) {
      if (!isServerName(name)) {
        rejected.push({ server: name.slice(0, 128), reason: 'not a valid server name' });
        continue;
      }
      const d = identity.mayServe(name);
      // One reason for both "undeclared" and "not listed": a connector learns nothing about other servers.
      if (d.allow) accepted.push(name);
      else rejected.push({ server: name, reason: `this connector is not listed under servers.${name}.connectors` });
    }
    const welcome: WelcomePayload = {
      version: Math.min(version, LINK_PROTOCOL_VERSION),
      linkId: this.linkId,
      relay: this.ctx.relayId.toString(),
      accepted,
      rejected,
      window: this.ctx.limits.sessionWindowBytes,
      reauth: true,
      events: true,
    };
    this.send(encodeControl(FrameType.WELCOME, 0, welcome));
    this.ctx.audit.write({
      type: 'link.up',
      linkId: this.linkId,
      connector: this.peer.id.toString(),
      connectorCertSerial: this.peer.certSerial,
      servers: accepted,
      rejectedServers: rejected.map((r) => r.server),
    });
    if (accepted.length === 0) {
      this.log.warn({ rejected }, 'link refused: no server accepted');
      this.shutdown(CloseCode.FORBIDDEN, 'no server accepted for this connector');
      return;
    }
    this.accepted = accepted;
    this.state = ACTIVE;
    this.counted = true;
    this.ctx.metrics.linksUp++;
    for (const name of accepted) this.ctx.registry.add(name, this);
    this.log.info({ accepted, rejected: rejected.map((r) => r.server) }, 'link registered');
    if (this.relayDraining) this.send(encodeControl(FrameType.GOAWAY, 0, { code: CloseCode.GOING_AWAY, reason: 'relay shutting down' }));
  }

  private goAwayReceived(reason: unknown): void {
    if (this.state !== ACTIVE) return;
    this.state = DRAINING;
    this.ctx.registry.removeLink(this);
    this.log.info({ reason: closeReason(reason) }, 'connector sent GOAWAY; draining');
  }

  /**
   * reauth moves the link to a renewed certificate (its expiry, its serial) when the proof, the SVID
   * rules and the policy (not revoked) accept it; the link and its sessions carry on either way,
   * and a refused one still ends at the old certificate's expiry.
   */
  private reauth(payload: ReauthPayload): void {
    const { answer, next } = judgeReauth(this.ctx, this.socket as TLSSocket, payload, this.peer, `link:${this.linkId}`);
    if (next !== undefined) {
      this.peer = next;
      this.expiry?.cancel();
      this.expiry = watchExpiry(next.expiresAt, () => this.expired());
      this.log.info({ notAfter: answer.notAfter }, 'connector re-authenticated with a renewed certificate');
    } else {
      this.log.warn({ reason: answer.reason }, 'connector re-authentication refused');
    }
    this.send(encodeControl(FrameType.REAUTH_RESULT, 0, answer));
  }

  private expired(): void {
    this.ctx.metrics.expiryCloses++;
    this.log.info({ expiresAt: this.peer.expiresAt.toISOString() }, 'connector certificate expired; closing its link');
    this.shutdown(CloseCode.IDENTITY_EXPIRED, `connector certificate expired at ${this.peer.expiresAt.toISOString()}`);
  }

  private protocolError(message: string): void {
    this.ctx.metrics.linkProtocolErrors++;
    this.log.warn({ err: message }, 'link protocol error');
    this.shutdown(CloseCode.PROTOCOL_ERROR, message);
  }

  // ---------------------------------------------------------------- lifecycle

  /** goAway tells the connector the relay is shutting down: no new sessions on this link. */
  goAway(): void {
    this.relayDraining = true;
    if (this.state === ACTIVE || this.state === DRAINING) {
      this.send(encodeControl(FrameType.GOAWAY, 0, { code: CloseCode.GOING_AWAY, reason: 'relay shutting down' }));
    }
  }

  /**
   * shutdown closes the link with `code`: it leaves the registry, its sessions are closed (4509
   * when the relay is going away, so agents resume them elsewhere; 4503 for a link closed for its
   * connector's sake — expired, revoked, a protocol error — whose sessions the connector ends too),
   * and the WebSocket is closed.
   */
  shutdown(code: number, reason: string): void {
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    this.release(LOST_LINK_CLOSES.has(code));
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(code, closeReason(reason));
    }
    this.finish(code, reason);
  }

  /** @internal protocolClose is the close `ws` sent for a protocol error it found (1009 frame too big, bad framing). */
  protocolClose: ProtocolClose | undefined;

  /** @internal the WebSocket closed. */
  handleClose(code: number, reason: Buffer): void {
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    const sent = closeAsSent(code, reason.toString('utf8'), this.protocolClose);
    // Lost (no close frame, going away, an error): the connector keeps resumable sessions.
    this.release(LOST_LINK_CLOSES.has(sent.code));
    this.finish(sent.code, sent.reason);
  }

  private release(resumable: boolean): void {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    this.expiry?.cancel();
    this.ctx.registry.removeLink(this);
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of sessions) s.handleLinkLost(resumable);
  }

  private finish(code: number, reason: string): void {
    if (this.counted) this.ctx.metrics.linksUp--;
    this.counted = false;
    this.ctx.audit.write({ type: 'link.down', linkId: this.linkId, connector: this.peer.id.toString(), code, reason: reason.slice(0, 512) });
    this.log.info({ code, reason }, 'link closed');
    this.ctx.linkEnded(this);
  }

  /** @internal heartbeat: ping the connector and the agents of its sessions; end silent ones. */
  tick(idleTicks: number): void {
    if (this.state === CLOSED) return;
    for (const s of this.sessions.values()) s.tick(idleTicks);
    if (++this.silentTicks > idleTicks) {
      this.log.warn({}, 'link silent; terminating');
      this.ws.terminate();
      return;
    }
    this.ws.ping();
  }

  /** @internal hello timer fired. */
  helloTimedOut(): void {
    if (this.state === AWAIT_HELLO) this.protocolError('no HELLO within the hello timeout');
  }
}

function linkOf(ws: WebSocket): ConnectorLink {
  return (ws as TaggedSocket)[kLink] as ConnectorLink;
}

function onLinkMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  linkOf(this).handleMessage(data, isBinary);
}

function onLinkClose(this: WebSocket, code: number, reason: Buffer): void {
  linkOf(this).handleClose(code, reason);
}

function onLinkError(this: WebSocket, err: Error): void {
  // ws closes the connection itself (1009 frame too big, framing errors); 'close' follows, and
  // records the code ws sent.
  const link = linkOf(this);
  link.protocolClose ??= protocolCloseOf(err);
}

function onLinkPong(this: WebSocket): void {
  linkOf(this).silentTicks = 0;
}

function onHelloTimeout(link: ConnectorLink): void {
  link.helloTimedOut();
}
