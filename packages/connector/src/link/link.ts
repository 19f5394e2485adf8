import { performance } from 'node:perf_hooks';
import type { IncomingMessage, ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  CloseCode,
  closeReason,
  decodeFrame,
  DEFAULT_SESSION_WINDOW_BYTES,
  encodeControl,
  FrameType,
  HEADER_BYTES,
  LINK_PROTOCOL_VERSION,
  LINK_SUBPROTOCOL,
  LOST_LINK_CLOSES,
  LinkProtocolError,
  readRefusalReason,
  type Frame,
  type OpenPayload,
  type WelcomePayload,
  type ReauthResultPayload,
  reauthProof,
  relayCertificateExpiry,
} from '@switchboard/protocol';
import WebSocket from 'ws';
import type { BackendFactory, BackendSession } from '../backend/backend.js';
import type { ServerConfig } from '../config.js';
import {
  ConnectorError,
  IdentityRejectedError,
  HandshakeError,
  LinkLostError,
  NoServersAcceptedError,
  ProtocolError,
  ProtocolVersionError,
} from '../errors.js';
import type { RelayTls } from '@switchboard/protocol';
import { coalesce } from '@switchboard/common';
import type { Logger } from '@switchboard/common';
import { CONNECTOR_VERSION } from '../version.js';
import { dialError } from './dial-errors.js';
import type { ResumeTable } from './resume-table.js';
import { Session, type BackendTimings, type SessionHost } from './session.js';
import type { Tracing } from '@switchboard/common/tracing';

/** MAX_LINK_FRAME_BYTES is the largest link frame accepted: 16 MiB of payload plus the header. */
export const MAX_LINK_FRAME_BYTES = 16 * 1024 * 1024 + HEADER_BYTES;

/** LinkTiming holds the link's timers; the defaults are the protocol's. */
export interface LinkTiming {
  /** pingIntervalMs is how often a WebSocket ping is sent (10 s). */
  pingIntervalMs: number;
  /** silenceTimeoutMs is how long without any frame or pong before the link is dropped (30 s). */
  silenceTimeoutMs: number;
  /** welcomeTimeoutMs is how long to wait for WELCOME after HELLO (10 s). */
  welcomeTimeoutMs: number;
  /** handshakeTimeoutMs bounds the TCP + TLS + HTTP upgrade (10 s). */
  handshakeTimeoutMs: number;
}

/** DEFAULT_LINK_TIMING is the protocol's timing. */
export const DEFAULT_LINK_TIMING: Readonly<LinkTiming> = Object.freeze({
  pingIntervalMs: 10_000,
  silenceTimeoutMs: 30_000,
  welcomeTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
});

/** LinkCounters are the link's contribution to the connector's metrics. */
export interface LinkCounters {
  sessionsOpened: number;
  openFailures: number;
  sessionsClosed: number;
  backendFailures: number;
  overflows: number;
  /** relayCertExpiries counts links replaced because the relay's certificate on them expired. */
  relayCertExpiries: number;
  /** egressDenied counts destinations refused to contained servers (each reported once per session). */
  egressDenied: number;
}

/** LinkState is where a link is in its life cycle. */
export type LinkState = 'connecting' | 'handshaking' | 'up' | 'draining' | 'closed';

/** LinkEnd is how a link ended: the error (none after a clean shutdown) and whether it was ever welcomed. */
export interface LinkEnd {
  readonly error: ConnectorError | undefined;
  /** welcomedAt is when a WELCOME accepted at least one server, if one did. */
  readonly welcomedAt: number | undefined;
}

/** LinkOptions configure one link. */
export interface LinkOptions {
  /** relay is the relay's base URL; the link dials `<relay>/v1/connector`. */
  relay: string;
  tls: RelayTls;
  servers: Readonly<Record<string, ServerConfig>>;
  createBackend: BackendFactory;
  logger: Logger;
  timing: LinkTiming;
  maxSessions: number;
  outputBufferBytes: number;
  counters: LinkCounters;
  /** timings hears backend start and request times (the connector's histograms). */
  timings?: BackendTimings;
  /** tracing records the sessions' and calls' spans (connector.yaml `tracing`). */
  tracing?: Tracing;
  /** resumes holds the connector's resumable sessions (shared by every link). */
  resumes: ResumeTable;
  now: () => number;
  onWelcome?: (link: Link, welcome: WelcomePayload) => void;
  onGoaway?: (link: Link) => void;
}

/**
 * Link is one connection to one relay (`/v1/connector`, subprotocol `switchboard.v1`): HELLO and
 * WELCOME, the session table, frames both ways, ping/pong liveness and GOAWAY. It never
 * reconnects; the supervisor makes a new link.
 */
export class Link implements SessionHost {
  readonly relay: string;
  readonly done: Promise<LinkEnd>;
  readonly outputBufferBytes: number;
  state: LinkState = 'connecting';
  welcome: WelcomePayload | undefined;
  welcomedAt: number | undefined;
  /** goawayReceived is set once the relay announced it is shutting down. */
  goawayReceived = false;

  private readonly opts: LinkOptions;
  private readonly logger: Logger;
  private readonly ws: WebSocket;
  private readonly sessions = new Map<number, Session>();
  private readonly accepted = new Set<string>();
  private readonly closures = new Set<Promise<void>>();
  private resolveDone!: (end: LinkEnd) => void;
  private error: ConnectorError | undefined;
  private socket: Socket | undefined;
  private window = DEFAULT_SESSION_WINDOW_BYTES;
  private lastHeard: number;
  private lastSessionId = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private welcomeTimer: NodeJS.Timeout | undefined;
  private relayExpiryTimer: NodeJS.Timeout | undefined;
  private closingByUs = false;
  private goawaySent = false;
  private drainWaiters: (() => void)[] = [];
  private reauthWaiter: ((result: ReauthResultPayload) => void) | undefined;

  constructor(opts: LinkOptions) {
    this.opts = opts;
    this.relay = opts.relay;
    this.logger = opts.logger;
    this.outputBufferBytes = opts.outputBufferBytes;
    this.lastHeard = opts.now();
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    this.ws = new WebSocket(`${opts.relay}/v1/connector`, LINK_SUBPROTOCOL, {
      createConnection: opts.tls.createConnection as never,
      perMessageDeflate: false,
      handshakeTimeout: opts.timing.handshakeTimeoutMs,
      maxPayload: MAX_LINK_FRAME_BYTES,
      followRedirects: false,
    });
    this.ws.on('upgrade', this.onUpgrade);
    this.ws.on('unexpected-response', this.onUnexpectedResponse);
    this.ws.on('open', this.onOpen);
    this.ws.on('message', this.onMessage);
    this.ws.on('ping', this.onHeard);
    this.ws.on('pong', this.onHeard);
    this.ws.on('error', this.onError);
    this.ws.on('close', this.onClose);
  }

  /** sessionCount is the number of open sessions. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** acceptedServers lists the servers the relay registered for this link. */
  get acceptedServers(): string[] {
    return [...this.accepted];
  }

  /** goaway tells the relay we are shutting down: it opens no new sessions here, existing ones drain. */
  goaway(reason: string): void {
    if (this.goawaySent || (this.state !== 'up' && this.state !== 'draining')) return;
    this.goawaySent = true;
    this.state = 'draining';
    this.sendFrame(encodeControl(FrameType.GOAWAY, 0, { code: CloseCode.GOING_AWAY, reason }));
  }

  /** whenDrained resolves once no session is open on this link. */
  whenDrained(): Promise<void> {
    if (this.sessions.size === 0 || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * shutdown closes what is left: remaining sessions get CLOSE 4509, their backends are closed,
   * and the link closes with 1001. Resolves when the backends are closed and the socket is gone.
   */
  async shutdown(reason: string): Promise<void> {
    this.closingByUs = true;
    for (const s of [...this.sessions.values()]) s.fail(CloseCode.LINK_LOST, reason);
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(CloseCode.GOING_AWAY, closeReason(reason));
    else if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    await Promise.all([this.done, ...this.closures]);
  }

  /** terminate drops the link at once (fatal error or test teardown); backends are closed. */
  terminate(): void {
    this.closingByUs = true;
    this.ws.terminate();
  }

  // SessionHost

  /** sendFrame writes one frame; writes of one tick are coalesced into one TLS write. */
  sendFrame(frame: Buffer): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (this.socket) coalesce(this.socket);
    this.ws.send(frame);
  }

  sessionEnded(session: Session): void {
    this.opts.counters.sessionsClosed++;
    this.forget(session);
  }

  private forget(session: Session): void {
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
    if (this.sessions.size === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  countOverflow(): void {
    this.opts.counters.overflows++;
  }

  countEgressDenied(): void {
    this.opts.counters.egressDenied++;
  }

  get events(): boolean {
    return this.welcome?.events === true;
  }

  get timings(): BackendTimings | undefined {
    return this.opts.timings;
  }

  get tracing(): Tracing | undefined {
    return this.opts.tracing;
  }

  sessionMoved(session: Session): void {
    this.forget(session);
  }

  /** track keeps a backend closing so that shutdown can wait for it. */
  track(closing: Promise<void>): void {
    this.closures.add(closing);
    void closing.finally(() => this.closures.delete(closing));
  }

  private readonly onUpgrade = (res: IncomingMessage): void => {
    this.socket = res.socket as Socket;
  };

  private readonly onUnexpectedResponse = (req: ClientRequest, res: IncomingMessage): void => {
    const status = res.statusCode ?? 0;
    void readRefusalReason(res).then((line) => {
      const detail = `HTTP ${status}${line ? `: ${line}` : ''}`;
      this.error ??=
        status === 403
          ? new IdentityRejectedError(`${this.relay} refused the link (${detail}); is this connector's SPIFFE ID listed under servers.<name>.connectors in the relay policy?`, { status })
          : new HandshakeError(`${this.relay} refused the WebSocket upgrade (${detail})`, { status });
      req.destroy();
      this.ws.terminate();
    });
  };

  private readonly onOpen = (): void => {
    this.state = 'handshaking';
    this.lastHeard = this.opts.now();
    this.sendFrame(
      encodeControl(FrameType.HELLO, 0, { version: LINK_PROTOCOL_VERSION, servers: Object.keys(this.opts.servers), agent: `switchboard-connector/${CONNECTOR_VERSION}` }),
    );
    this.heartbeat = setInterval(this.onHeartbeat, this.opts.timing.pingIntervalMs);
    this.welcomeTimer = setTimeout(this.onWelcomeTimeout, this.opts.timing.welcomeTimeoutMs);
  };

  private readonly onHeard = (): void => {
    this.lastHeard = this.opts.now();
  };

  private readonly onHeartbeat = (): void => {
    if (this.opts.now() - this.lastHeard >= this.opts.timing.silenceTimeoutMs) {
      this.error ??= new LinkLostError(`no frame or pong from ${this.relay} for ${this.opts.timing.silenceTimeoutMs / 1000} s`);
      this.ws.terminate();
      return;
    }
    this.ws.ping();
  };

  private readonly onWelcomeTimeout = (): void => {
    if (this.state !== 'handshaking') return;
    this.protocolViolation(`no WELCOME within ${this.opts.timing.welcomeTimeoutMs / 1000} s of HELLO`);
  };

  private readonly onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
    this.lastHeard = this.opts.now();
    if (!isBinary) {
      this.protocolViolation('text frame on the link');
      return;
    }
    let frame: Frame;
    try {
      frame = decodeFrame(data as Buffer);
    } catch (err) {
      this.protocolViolation(err instanceof LinkProtocolError ? err.message.replace(/^link: /, '') : String(err));
      return;
    }
    switch (frame.type) {
      case FrameType.DATA:
        this.sessions.get(frame.sessionId)?.data(frame.data);
        return;
      case FrameType.WINDOW:
        this.sessions.get(frame.sessionId)?.window(frame.increment);
        return;
      case FrameType.OPEN:
        this.onOpenFrame(frame.sessionId, frame.payload);
        return;
      case FrameType.CLOSE: {
        const s = this.sessions.get(frame.sessionId);
        if (s === undefined) return;
        // The relay lost the agent's connection (not a close by the agent): keep it for a resume.
        if (frame.payload.code === CloseCode.LINK_LOST && this.keepForResume(s)) return;
        s.closedByRelay(frame.payload.code, frame.payload.reason);
        return;
      }
      case FrameType.WELCOME:
        this.onWelcomeFrame(frame.payload);
        return;
      case FrameType.GOAWAY:
        this.onGoawayFrame(frame.payload.reason);
        return;
      case FrameType.REAUTH_RESULT: {
        const waiter = this.reauthWaiter;
        this.reauthWaiter = undefined;
        waiter?.(frame.payload);
        return;
      }
      default:
        this.protocolViolation(`frame type 0x${frame.type.toString(16)} must not be sent by the relay`);
    }
  };

  private onWelcomeFrame(w: WelcomePayload): void {
    if (this.state !== 'handshaking') {
      this.protocolViolation('WELCOME outside the handshake');
      return;
    }
    clearTimeout(this.welcomeTimer);
    if (w.version !== LINK_PROTOCOL_VERSION) {
      this.error ??= new ProtocolVersionError(`${this.relay} answered with link protocol version ${w.version}; this connector speaks version ${LINK_PROTOCOL_VERSION}`);
      this.close(CloseCode.PROTOCOL_ERROR, 'unsupported version');
      return;
    }
    this.welcome = w;
    this.window = w.window;
    const rejected = w.rejected;
    for (const r of rejected) this.logger.warn({ server: r.server, reason: r.reason }, 'relay rejected server');
    for (const name of w.accepted) {
      if (Object.hasOwn(this.opts.servers, name)) this.accepted.add(name);
      else this.logger.warn({ server: name }, 'relay accepted a server this connector did not offer; ignored');
    }
    if (this.accepted.size === 0) {
      this.error ??= new NoServersAcceptedError(rejected);
      this.close(CloseCode.NORMAL, 'no server accepted');
      return;
    }
    this.state = 'up';
    this.welcomedAt = this.opts.now();
    this.logger.info({ linkId: w.linkId, relayId: w.relay, accepted: [...this.accepted], window: w.window }, 'link up');
    this.watchRelayExpiry();
    this.opts.onWelcome?.(this, w);
  }

  // The relay's certificate was checked at the handshake; when it expires, this link stops taking
  // sessions (GOAWAY from us), the supervisor dials a new link (which checks the relay's current
  // certificate), and this one closes once its sessions have ended: no new session ever goes
  // through a relay certificate that has expired, and none of the open ones is dropped.
  private watchRelayExpiry(): void {
    const socket = this.socket as TLSSocket | undefined;
    const at = socket === undefined ? undefined : relayCertificateExpiry(socket);
    if (at === undefined) return;
    this.relayExpiryTimer = setTimeout(() => this.onRelayCertificateExpired(at), Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1));
    this.relayExpiryTimer.unref();
  }

  private onRelayCertificateExpired(at: number): void {
    if (this.state !== 'up' || this.goawaySent || this.goawayReceived) return;
    this.logger.info({ expiredAt: new Date(at).toISOString(), sessions: this.sessions.size }, "the relay's certificate on this link expired; dialing a new link, this one drains");
    this.opts.counters.relayCertExpiries++;
    this.goaway('relay certificate expired');
    this.opts.onGoaway?.(this);
    void this.whenDrained().then(() => {
      if (this.state !== 'closed') void this.shutdown('relay certificate expired; link replaced');
    });
  }

  /**
   * reauthenticate presents a renewed identity on this live link (REAUTH, proven over this TLS
   * connection), so the relay moves the link to the new certificate instead of closing it at the
   * old one's expiry. Resolves with the relay's answer; `{ ok: false }` without asking when the link
   * is not up or the relay does not accept REAUTH (it then ends at the old expiry and is redialed).
   */
  reauthenticate(tls: RelayTls, timeoutMs = 10_000): Promise<ReauthResultPayload> {
    const socket = this.socket as TLSSocket | undefined;
    if ((this.state !== 'up' && this.state !== 'draining') || socket === undefined || this.welcome?.reauth !== true) {
      return Promise.resolve({ ok: false, reason: 'link not up, or the relay does not accept REAUTH' });
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.reauthWaiter = undefined;
        resolve({ ok: false, reason: `no REAUTH_RESULT within ${timeoutMs} ms` });
      }, timeoutMs);
      this.reauthWaiter = (result) => {
        clearTimeout(timer);
        if (result.ok) this.logger.info({ notAfter: result.notAfter }, 'link re-authenticated with the renewed identity');
        else this.logger.warn({ reason: result.reason }, 'relay refused the renewed identity on this link');
        resolve(result);
      };
      this.sendFrame(encodeControl(FrameType.REAUTH, 0, reauthProof(socket, tls.identity)));
    });
  }

  private onGoawayFrame(reason: string): void {
    if (this.goawayReceived) return;
    this.goawayReceived = true;
    this.state = 'draining';
    this.logger.info({ reason }, 'relay is going away; draining');
    this.opts.onGoaway?.(this);
  }

  private onOpenFrame(id: number, p: OpenPayload): void {
    if (this.state === 'handshaking' || this.state === 'connecting') {
      this.protocolViolation('OPEN before WELCOME');
      return;
    }
    if (id <= this.lastSessionId) {
      this.protocolViolation(`OPEN reuses session id ${id}`);
      return;
    }
    this.lastSessionId = id;
    const fail = (reason: string, code: number = CloseCode.BACKEND_FAILED): void => {
      this.opts.counters.openFailures++;
      this.sendFrame(encodeControl(FrameType.OPEN_FAIL, id, { code, reason }));
    };
    if (this.goawaySent || this.state === 'closed') return fail('connector is shutting down', CloseCode.NO_CONNECTOR);
    if (!this.accepted.has(p.server)) return fail(`server ${p.server} is not served on this link`);
    if (this.sessions.size >= this.opts.maxSessions) return fail('too many sessions on this link');

    const logger = this.logger.child({ sessionId: id, server: p.server, peer: p.agent });
    if (p.resume !== undefined) {
      const resumes = this.opts.resumes;
      const found = resumes.enabled ? resumes.take(p.resume, p.agent, p.server) : 'unknown';
      // One answer for every refusal: a relay (or whoever holds a stolen id) learns nothing more.
      if (typeof found === 'string') return fail('no such session to resume', CloseCode.RESUME_REFUSED);
      this.sessions.set(id, found);
      found.reattach(this, id, this.window, logger, { resumed: true, resume: { id: p.resume.id, secret: p.resume.secret, graceMs: resumes.graceMs } });
      return;
    }
    const session = new Session(this, id, p.server, p.agent, this.window, logger);
    session.traceFrom(p.traceparent);
    this.sessions.set(id, session);
    let backend: BackendSession;
    const t0 = performance.now();
    const started = (ok: boolean): void => this.opts.timings?.started(p.server, (performance.now() - t0) / 1000, ok);
    try {
      backend = this.opts.createBackend(this.opts.servers[p.server] as ServerConfig, p, session, logger);
    } catch (err) {
      session.state = 'closed';
      this.forget(session);
      logger.warn({ err: (err as Error).message }, 'backend could not be created');
      started(false);
      return fail(`backend ${p.server} failed to start`);
    }
    backend.start().then(
      () => {
        if (session.state === 'closed') {
          this.track(backend.close());
          return;
        }
        this.opts.counters.sessionsOpened++;
        started(true);
        logger.info({}, 'session open');
        if (p.resumable === true && this.opts.resumes.enabled) {
          const credential = this.opts.resumes.issue(session);
          session.onRelease = (s) => this.opts.resumes.forget(s);
          session.opened(backend, { resume: { ...credential, graceMs: this.opts.resumes.graceMs } });
        } else {
          session.opened(backend);
        }
      },
      (err: unknown) => {
        this.opts.counters.backendFailures++;
        started(false);
        logger.warn({ err: (err as Error).message }, 'backend failed to start');
        this.track(backend.close());
        if (session.state === 'closed') return;
        session.state = 'closed';
        this.forget(session);
        fail(`backend ${p.server} failed to start`);
      },
    );
  }

  /** keepForResume detaches a resumable open session and holds it for the grace period; false when it is not resumable. */
  private keepForResume(session: Session): boolean {
    if (!this.opts.resumes.enabled || session.resumeId === undefined || session.state !== 'open') return false;
    session.detach();
    this.opts.resumes.hold(session);
    return true;
  }

  private protocolViolation(message: string): void {
    this.logger.warn({ reason: message }, 'link protocol error');
    this.error ??= new ProtocolError(message);
    this.close(CloseCode.PROTOCOL_ERROR, closeReason(message));
  }

  private close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, closeReason(reason));
    else this.ws.terminate();
  }

  private readonly onError = (err: Error): void => {
    if (this.error) return;
    const e = dialError(err, this.relay);
    // Once the link is open, a transport failure is a lost link, not a failed dial.
    this.error = this.state === 'connecting' || e.code === 'CONNECTOR_ERR_IDENTITY_REJECTED' ? e : new LinkLostError(`connection to ${this.relay} failed: ${err.message}`, { cause: err });
  };

  private readonly onClose = (code: number, reasonBuf: Buffer): void => {
    clearInterval(this.heartbeat);
    clearTimeout(this.welcomeTimer);
    clearTimeout(this.relayExpiryTimer);
    const wasUp = this.state;
    this.state = 'closed';
    const reason = reasonBuf.toString('utf8');
    if (!this.error && !this.closingByUs) this.error = closeError(code, reason, this.relay, wasUp);
    // A lost link (the relay died, shut down or went silent; not our shutdown, not a close for
    // our identity's sake) leaves resumable sessions waiting for their agents.
    const lost = !this.closingByUs && LOST_LINK_CLOSES.has(code);
    for (const s of [...this.sessions.values()]) if (!lost || !this.keepForResume(s)) void s.release();
    for (const w of this.drainWaiters) w();
    this.drainWaiters = [];
    if (this.error) this.logger.info({ code, reason, err: this.error.message }, 'link closed');
    else this.logger.info({ code }, 'link closed');
    this.resolveDone({ error: this.error, welcomedAt: this.welcomedAt });
  };
}

function closeError(code: number, reason: string, relay: string, state: LinkState): ConnectorError {
  const detail = `${code}${reason ? ` ${reason}` : ''}`;
  if (code === CloseCode.IDENTITY_REVOKED) return new IdentityRejectedError(`${relay} revoked our identity (close ${detail})`);
  if (code === CloseCode.FORBIDDEN) return new IdentityRejectedError(`${relay} closed the link as forbidden (close ${detail})`);
  if (code === CloseCode.PROTOCOL_ERROR) return new ProtocolError(`${relay} closed the link as a protocol error (close ${detail})`);
  if (code === CloseCode.GOING_AWAY) return new LinkLostError(`${relay} is going away (close ${detail})`, { closeCode: code });
  if (state === 'connecting') return new HandshakeError(`${relay} closed the connection during the handshake (close ${detail})`);
  return new LinkLostError(`${relay} closed the link (close ${detail})`, { closeCode: code });
}
