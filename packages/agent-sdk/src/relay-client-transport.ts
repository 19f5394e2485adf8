import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Identity, SpiffeId } from '@switchboard/pki';
import {
  AGENT_SUBPROTOCOL,
  CloseCode,
  REAUTH_HEADER,
  RESUME_HEADER,
  SERVER_NAME_RULE,
  isJsonRpcMessage,
  isServerName,
  readRefusalReason,
  readSessionInfo,
  reauthProof,
  type ReauthResultPayload,
} from '@switchboard/protocol';
import WebSocket from 'ws';
import { AccessDeniedError, AgentError, HandshakeError, NoConnectorError, NotConnectedError, SessionClosedError } from './errors.js';
import { AgentIdentity, resolveRelayId } from './identity.js';
import { dialError } from './internal/dial-errors.js';
import type { RelayTls } from '@switchboard/protocol';

/** MAX_INBOUND_MESSAGE_BYTES bounds one server → agent message (the relay's limit: 16 MiB). */
export const MAX_INBOUND_MESSAGE_BYTES = 16 * 1024 * 1024;
const SEND_HIGH_WATER_BYTES = 1024 * 1024;
const CLOSE_TIMEOUT_MS = 3000;
// A Buffer given to ws with `binary: false` goes out as a text frame whose header and masked
// payload ws builds in one buffer (one stream write); a string leaves as two chunks via a writev.
const TEXT_FRAME = Object.freeze({ binary: false });
// send() resolves at once unless the socket is backed up: one settled promise serves every call.
const SENT: Promise<void> = Promise.resolve();
/** RESUMABLE_CLOSES are the closes after which the session is resumed: the relay or its link went away, the backend did not. */
const RESUMABLE_CLOSES: ReadonlySet<number> = new Set([CloseCode.GOING_AWAY, 1006, CloseCode.INTERNAL_ERROR, CloseCode.LINK_LOST]);
/**
 * RESUME_NO_ROUTE_MS bounds how long a resume goes on while every relay that answers says the
 * connector holding the session has no link to it (409): the connector is gone (crashed), not
 * reconnecting, and a new session (through another connector) is the way on.
 */
const RESUME_NO_ROUTE_MS = 5000;
/** MAX_QUEUED_WHILE_RESUMING bounds the messages held while a session is being resumed. */
const MAX_QUEUED_WHILE_RESUMING = 1000;

/** LOST_CALL_ERROR is the JSON-RPC error each call unanswered when a relay session is lost gets (it may or may not have run). */
export const LOST_CALL_ERROR = Object.freeze({ code: -32052, message: 'The relay session was lost before this call was answered; it may or may not have run' });

/** lostReply is the answer to request `id` that its session lost: -32052, retryable. */
export function lostReply(id: string | number): JSONRPCMessage {
  return { jsonrpc: '2.0', id, error: { ...LOST_CALL_ERROR, data: { retryable: true } } } as JSONRPCMessage;
}

/** sessionUrl is the agent session URL of a relay base URL; a caller mistake is a TypeError. */
function sessionUrl(relay: string | URL, server: string): string {
  let base: URL;
  try {
    base = new URL(relay.toString());
  } catch {
    throw new TypeError(`agent: relay ${JSON.stringify(relay.toString())} is not a URL`);
  }
  if (base.protocol !== 'wss:') throw new TypeError(`agent: relay must be a wss:// URL, not ${base.protocol}`);
  if (base.search !== '' || base.hash !== '' || base.username !== '' || base.password !== '') {
    throw new TypeError('agent: relay URL must not carry credentials, a query or a fragment');
  }
  return `${base.href.replace(/\/+$/, '')}/v1/agent/${server}`;
}

/** RelayClientTransportOptions configure a {@link RelayClientTransport}. */
export interface RelayClientTransportOptions {
  /**
   * relay is the relay's base URL, `wss://host:port` (a path prefix is kept), or several relays:
   * the session is opened on the first that accepts it ({@link FailoverOptions}).
   */
  relay: string | URL | readonly (string | URL)[];
  /** server is the MCP server's name in the relay policy. */
  server: string;
  /** failover tunes how several relays are tried (rounds, full-jitter backoff between rounds). */
  failover?: FailoverOptions;
  /** identity is our X509-SVID with its bundle; an {@link AgentIdentity} shares its TLS context across transports. */
  identity: Identity | AgentIdentity;
  /** relayId is the rule the relay's SPIFFE ID must match: an exact ID or a pattern (default `spiffe://<our trust domain>/relay/*`). */
  relayId?: string | SpiffeId;
  /** handshakeTimeoutMs bounds TCP + TLS + upgrade (default 10 s). */
  handshakeTimeoutMs?: number;
  /**
   * resumption resumes the session through another relay (or the same one back) when its relay
   * dies, is shut down, or loses the connector's link: the same backend session, re-attached by
   * the connector within its grace period; calls in flight get -32052 ({@link LOST_CALL_ERROR}),
   * messages sent meanwhile wait. Default on; off, such a loss ends the session (docs/protocol.md).
   */
  resumption?: boolean;
  /** now is the clock used for the local certificate check (tests). */
  now?: () => number;
}

/**
 * FailoverOptions tune how a session start tries its relays: each round tries every relay in the
 * given order (the first is the preferred one); an error that another relay cannot cure (access
 * denied, our certificate refused) ends it at once; between rounds it waits a full-jitter backoff
 * (a random time up to `baseDelayMs` × 2^round, at most `maxDelayMs`).
 */
export interface FailoverOptions {
  /** rounds over the relay list (default 3 with several relays, 1 with one). */
  rounds?: number;
  /** baseDelayMs is the backoff before the second round's cap (default 250 ms). */
  baseDelayMs?: number;
  /** maxDelayMs caps one backoff (default 5 s). */
  maxDelayMs?: number;
  /** random returns [0, 1) (tests). */
  random?: () => number;
}

type State = 'new' | 'connecting' | 'open' | 'resuming' | 'closing' | 'closed';

/**
 * RelayClientTransport is an MCP SDK `Transport` over a Switchboard relay: one mutual-TLS
 * WebSocket to `wss://<relay>/v1/agent/<server>` with subprotocol `mcp`, one JSON-RPC message per
 * text frame. It follows the Transport contract exactly: `start()` once (a second call throws),
 * `send()` rejects when not open, a bad frame goes to `onerror` and the stream goes on, and
 * `onclose` fires once. `start()` rejects with a typed error ({@link AccessDeniedError},
 * {@link NoConnectorError}, `CertificateRejectedError`, `RelayUnreachableError`); a close code from
 * the relay surfaces as {@link SessionClosedError} through `onerror`, before `onclose`.
 *
 * @example
 * const transport = new RelayClientTransport({ relay: 'wss://relay.example.org:8443', server: 'crm', identity });
 * const client = new Client({ name: 'support-bot', version: '1.0.0' });
 * await client.connect(transport);
 */
export class RelayClientTransport implements Transport {
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  onmessage?: (<T extends JSONRPCMessage>(message: T) => void) | undefined;
  /** sessionId is not used: the relay keeps one MCP session per WebSocket. */
  sessionId?: string | undefined;

  /** urls are the session URLs of the relays, in the order they are tried. */
  readonly urls: readonly string[];
  readonly server: string;
  private current: string;
  private readonly failover: Required<Omit<FailoverOptions, 'random'>> & { random: () => number };
  /** attempts lists, for the last start, each relay tried and why it did not take the session. */
  readonly attempts: { url: string; error: AgentError }[] = [];
  private readonly identity: AgentIdentity;
  private readonly tls: RelayTls;
  private readonly handshakeTimeoutMs: number;
  private readonly now: () => number;
  private state: State = 'new';
  private started = false;
  private ws: WebSocket | undefined;
  private socket: Socket | undefined;
  private closeErr: AgentError | undefined;
  /** lostBy is the socket error seen just before an abnormal close. */
  private lostBy: AgentError | undefined;
  private closedByUs = false;
  private oncloseFired = false;
  private drain: Promise<void> | undefined;
  private closeWaiters: (() => void)[] = [];
  private reauthSupported = false;
  private reauthWaiter: ((result: ReauthResultPayload) => void) | undefined;
  private stopReplaced: (() => void) | undefined;
  private readonly relayRule: ReturnType<typeof resolveRelayId>;
  private readonly resumption: boolean;
  /** resumeToken is the relay-given token of this session, once the backend session is open. */
  private resumeToken: string | undefined;
  private resumeGraceMs = 0;
  /** inFlight holds the ids of our requests not answered yet (answered -32052 when a session is lost). */
  private readonly inFlight = new Set<string | number>();
  private heldWhileResuming: JSONRPCMessage[] = [];
  private resumeConfirm: { resolve: () => void; reject: (err: AgentError) => void } | undefined;
  /** resumes counts the times this session was resumed through a new relay connection. */
  resumes = 0;
  /** onresume is called each time the session was resumed through a new relay connection. */
  onresume?: (() => void) | undefined;

  constructor(options: RelayClientTransportOptions) {
    if (!isServerName(options.server)) {
      throw new TypeError(`agent: server name ${JSON.stringify(options.server)}: ${SERVER_NAME_RULE}`);
    }
    this.server = options.server;
    const relays = typeof options.relay === 'string' || options.relay instanceof URL ? [options.relay] : [...options.relay];
    if (relays.length === 0) throw new TypeError('agent: relay: give at least one relay URL');
    const urls = relays.map((r) => sessionUrl(r, options.server));
    for (const [i, u] of urls.entries()) if (urls.indexOf(u) !== i) throw new TypeError(`agent: relay ${relays[i]?.toString()} is listed twice`);
    this.urls = Object.freeze(urls);
    this.current = urls[0] as string;
    const f = options.failover ?? {};
    const rounds = f.rounds ?? (urls.length > 1 ? 3 : 1);
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) throw new TypeError('agent: failover.rounds must be an integer from 1 to 100');
    this.failover = { rounds, baseDelayMs: f.baseDelayMs ?? 250, maxDelayMs: f.maxDelayMs ?? 5000, random: f.random ?? Math.random };
    this.identity = AgentIdentity.from(options.identity);
    this.relayRule = resolveRelayId(options.relayId);
    this.tls = this.identity.tlsFor(this.relayRule);
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
    this.resumption = options.resumption !== false;
    this.now = options.now ?? Date.now;
  }


  /** url is the session URL of the relay in use (after start), or of the first to try. */
  get url(): string {
    return this.current;
  }

  /** closeError is why the relay ended the session (close code or lost connection), once it has. */
  get closeError(): AgentError | undefined {
    return this.closeErr;
  }

  /** bufferedAmount is the number of bytes queued for the relay and not yet written. */
  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  /**
   * start opens the session, on the first relay that accepts it (several relays: tried in order,
   * round after round with backoff, {@link FailoverOptions}). Rejects with a typed
   * {@link AgentError} when our certificate is expired (before dialing), when a relay refuses in a
   * way no other relay would cure (access denied, our certificate), or with the last relay's error
   * once every round failed; {@link attempts} lists them all. Throws when called twice.
   */
  start(): Promise<void> {
    if (this.state === 'closed' && this.ws === undefined && !this.started) return Promise.reject(new NotConnectedError('transport was closed before it started'));
    if (this.started) {
      throw new Error('RelayClientTransport already started! If using Client class, note that connect() calls start() automatically.');
    }
    this.started = true;
    this.state = 'connecting';
    try {
      this.identity.checkValidity(this.now());
    } catch (err) {
      this.state = 'closed';
      return Promise.reject(err);
    }
    return this.failOver();
  }

  private async failOver(): Promise<void> {
    const { rounds, baseDelayMs, maxDelayMs, random } = this.failover;
    let last: AgentError | undefined;
    for (let round = 0; round < rounds; round++) {
      if (round > 0) {
        await new Promise((r) => setTimeout(r, random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (round - 1))));
      }
      for (const url of this.urls) {
        if (this.closedByUs) {
          this.state = 'closed';
          this.fireClose();
          throw new NotConnectedError('transport was closed while connecting');
        }
        this.current = url;
        try {
          await this.dial(url);
          return;
        } catch (err) {
          const e = err instanceof AgentError ? err : dialError(err, url);
          this.attempts.push({ url, error: e });
          last = e;
          // Policy and our own certificate are the same on every relay; closing stops trying.
          if (!e.retryable || e instanceof NotConnectedError || this.closedByUs) {
            this.state = 'closed';
            if (this.closedByUs) this.fireClose();
            throw e;
          }
        }
      }
    }
    this.state = 'closed';
    throw last as AgentError;
  }

  private dial(url: string, resumeToken?: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(url, AGENT_SUBPROTOCOL, {
        createConnection: this.tls.createConnection as never,
        perMessageDeflate: false,
        handshakeTimeout: this.handshakeTimeoutMs,
        maxPayload: MAX_INBOUND_MESSAGE_BYTES,
        followRedirects: false,
        ...(this.resumption ? { headers: { [RESUME_HEADER]: resumeToken === undefined ? 'v1' : `v1 ${resumeToken}` } } : {}),
      });
      this.ws = ws;
      let settled = false;
      const fail = (err: AgentError): void => {
        if (settled) return;
        settled = true;
        ws.removeAllListeners('close');
        ws.on('error', () => undefined);
        ws.terminate();
        reject(err);
      };
      ws.on('upgrade', (res: IncomingMessage) => {
        this.socket = res.socket as Socket;
        this.reauthSupported = res.headers[REAUTH_HEADER.toLowerCase()] === 'v1';
      });
      ws.on('unexpected-response', (req: ClientRequest, res: IncomingMessage) => {
        void readRefusalReason(res).then((reason) => {
          fail(this.refusal(res.statusCode ?? 0, reason));
          req.destroy();
          ws.terminate();
        });
      });
      ws.once('open', () => {
        if (settled) return;
        settled = true;
        if (this.state === 'closing') {
          ws.close(1000);
          reject(new NotConnectedError('transport was closed while connecting'));
          return;
        }
        if (resumeToken !== undefined) {
          // Resuming: the session is ours again only once the relay says the connector re-attached it.
          this.resumeConfirm = { resolve, reject };
          return;
        }
        this.state = 'open';
        // A renewed identity moves this session to the new certificate in place.
        this.stopReplaced = this.identity.onReplaced(() => void this.reauthenticate());
        resolve();
      });
      ws.on('error', (err: Error) => {
        if (!settled) fail(this.closedByUs ? new NotConnectedError('transport was closed while connecting') : dialError(err, url));
        else if (this.state === 'open') this.lostBy ??= new SessionClosedError(1006, err.message);
      });
      ws.on('message', this.onMessage);
      ws.on('close', this.onClose);
    });
  }

  /** send writes one JSON-RPC message as one text frame; resolves at once unless the socket is backed up. */
  send(message: JSONRPCMessage, _options?: TransportSendOptions): Promise<void> {
    const ws = this.ws;
    if (this.state === 'resuming') {
      if (this.heldWhileResuming.length >= MAX_QUEUED_WHILE_RESUMING) return Promise.reject(new NotConnectedError('the session is being resumed and too many messages wait'));
      this.heldWhileResuming.push(message);
      return SENT;
    }
    if (this.state !== 'open' || !ws) return Promise.reject(this.closeErr ?? new NotConnectedError());
    if (this.resumption && 'method' in message) {
      if ('id' in message) this.inFlight.add(message.id);
      // A cancelled request gets no response (MCP): stop tracking it.
      else if (message.method === 'notifications/cancelled') {
        const id = (message.params as { requestId?: unknown } | undefined)?.requestId;
        if (typeof id === 'string' || typeof id === 'number') this.inFlight.delete(id);
      }
    }
    ws.send(Buffer.from(JSON.stringify(message), 'utf8'), TEXT_FRAME);
    if (ws.bufferedAmount <= SEND_HIGH_WATER_BYTES || !this.socket) return SENT;
    // Backpressure: callers that await send() stop producing until the socket drains.
    this.drain ??= new Promise<void>((resolve) => {
      const socket = this.socket as Socket;
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        this.drain = undefined;
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
    return this.drain;
  }

  /** pause stops reading from the relay (the stdio bridge uses it when its stdout is backed up). */
  pause(): void {
    if (this.state === 'open') this.ws?.pause();
  }

  // ---------------------------------------------------------------- resumption

  /**
   * reattach resumes the session after `lost`: every relay in turn (the one lost last), round
   * after round with backoff, for as long as the connector keeps the session (its grace period).
   * Calls in flight are answered -32052 at once (their replies, if any, are not delivered); what
   * the client sends meanwhile waits and goes out once the session is back.
   */
  private async reattach(lost: AgentError): Promise<void> {
    const token = this.resumeToken as string;
    this.state = 'resuming';
    for (const id of this.inFlight) this.onmessage?.(lostReply(id));
    this.inFlight.clear();
    const deadline = this.now() + this.resumeGraceMs;
    const order = [...this.urls.filter((u) => u !== this.current), this.current];
    let round = 0;
    let routed = this.now();
    while (this.now() < deadline && !this.closedByUs) {
      if (this.now() - routed > RESUME_NO_ROUTE_MS) break;
      for (const url of order) {
        if (this.closedByUs || this.now() >= deadline) break;
        this.current = url;
        try {
          await this.dial(url, token);
          this.resumes++;
          this.state = 'open';
          this.stopReplaced = this.identity.onReplaced(() => void this.reauthenticate());
          const held = this.heldWhileResuming;
          this.heldWhileResuming = [];
          for (const m of held) void this.send(m).catch(() => undefined);
          this.onresume?.();
          return;
        } catch (err) {
          const e = err instanceof AgentError ? err : dialError(err, url);
          this.attempts.push({ url, error: e });
          // Refused for good (no such session any more, or not ours): a new session is the way on.
          // 409: the connector holding the session has no link to that relay (yet): try the others.
          const elsewhere = e instanceof HandshakeError && e.status === 409;
          if (!elsewhere) routed = this.now();
          if ((!e.retryable && !elsewhere) || (e instanceof SessionClosedError && e.closeCode === CloseCode.RESUME_REFUSED)) return this.endResume(lost);
        }
      }
      const wait = Math.min(this.failover.maxDelayMs, this.failover.baseDelayMs * 2 ** round++) * this.failover.random();
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(wait, deadline - this.now()))));
    }
    this.endResume(lost);
  }

  /** endResume gives up: the session is over with the error that lost it; what waited is answered -32052. */
  private endResume(lost: AgentError): void {
    const held = this.heldWhileResuming;
    this.heldWhileResuming = [];
    this.resumeToken = undefined;
    this.state = 'closed';
    for (const m of held) if ('method' in m && 'id' in m) this.onmessage?.(lostReply(m.id));
    this.closeErr = lost;
    if (!this.closedByUs) this.onerror?.(lost);
    this.fireClose();
  }

  /** resume undoes {@link RelayClientTransport.pause}. */
  resume(): void {
    if (this.state === 'open') this.ws?.resume();
  }

  /** close ends the session (WebSocket close 1000) and fires `onclose` once. */
  async close(): Promise<void> {
    const ws = this.ws;
    if (this.state === 'new' || this.state === 'closed' || !ws) {
      this.state = 'closed';
      this.fireClose();
      return;
    }
    this.closedByUs = true;
    if (this.state === 'connecting') {
      this.state = 'closing';
      ws.terminate();
    } else if (this.state === 'open') {
      this.state = 'closing';
      ws.close(1000);
    } else if (this.state === 'resuming') {
      // The resume loop sees closedByUs and ends the session (onclose) once this dial is gone.
      ws.terminate();
    }
    await new Promise<void>((resolve) => {
      if (this.oncloseFired) return resolve();
      const timer = setTimeout(() => {
        ws.terminate();
        resolve();
      }, CLOSE_TIMEOUT_MS);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private refusal(status: number, reason: string): AgentError {
    if (status === 403) return new AccessDeniedError(this.server, this.identity.id.toString(), reason);
    if (status === 503) return new NoConnectorError(this.server, reason);
    return new HandshakeError(`${this.current} refused the session (HTTP ${status}${reason ? `: ${reason}` : ''})`, { status });
  }

  /**
   * reauthenticate presents the identity's current SVID on this live session (a binary REAUTH
   * message proven over this TLS connection), so the relay moves the session to it instead of
   * closing it at the old certificate's expiry (4402). Called by itself after a renewal; resolves
   * with the relay's answer, `{ ok: false }` without asking when the relay does not accept REAUTH.
   */
  reauthenticate(timeoutMs = 10_000): Promise<ReauthResultPayload> {
    const ws = this.ws;
    const socket = this.socket as TLSSocket | undefined;
    if (this.state !== 'open' || ws === undefined || socket === undefined || !this.reauthSupported) {
      return Promise.resolve({ ok: false, reason: 'session not open, or the relay does not accept REAUTH' });
    }
    this.reauthWaiter?.({ ok: false, reason: 'superseded by a newer REAUTH' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.reauthWaiter = undefined;
        resolve({ ok: false, reason: `no answer to REAUTH within ${timeoutMs} ms` });
      }, timeoutMs);
      this.reauthWaiter = (result) => {
        clearTimeout(timer);
        this.reauthWaiter = undefined;
        resolve(result);
      };
      const proof = reauthProof(socket, this.identity.tlsFor(this.relayRule).identity);
      ws.send(JSON.stringify({ type: 'reauth', ...proof }), { binary: true });
    });
  }

  private readonly onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
    if (isBinary) {
      // The relay's one binary message is the answer to a REAUTH.
      let answer: { type?: unknown; ok?: unknown; notAfter?: unknown; reason?: unknown } | undefined;
      try {
        answer = JSON.parse((data as Buffer).toString('utf8')) as typeof answer;
      } catch {
        answer = undefined;
      }
      const info = readSessionInfo(answer);
      if (info !== undefined) {
        this.resumeToken = info.token;
        this.resumeGraceMs = info.graceMs;
        const confirm = this.resumeConfirm;
        this.resumeConfirm = undefined;
        if (confirm !== undefined && info.resumed) confirm.resolve();
        return;
      }
      if (answer?.type === 'reauth_result' && typeof answer.ok === 'boolean' && this.reauthWaiter) {
        this.reauthWaiter({ ok: answer.ok, ...(typeof answer.notAfter === 'string' ? { notAfter: answer.notAfter } : {}), ...(typeof answer.reason === 'string' ? { reason: answer.reason } : {}) });
        return;
      }
      this.onerror?.(new SyntaxError('agent: ignored a binary frame from the relay (MCP messages are text frames)'));
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse((data as Buffer).toString('utf8'));
    } catch {
      this.onerror?.(new SyntaxError('agent: ignored a frame that is not JSON'));
      return;
    }
    if (!isJsonRpcMessage(message)) {
      this.onerror?.(new SyntaxError('agent: ignored a frame that is not one JSON-RPC 2.0 message'));
      return;
    }
    if (this.inFlight.size > 0 && !('method' in message) && 'id' in message && message.id !== null) this.inFlight.delete(message.id as string | number);
    this.onmessage?.(message);
  };

  private readonly onClose = (code: number, reason: Buffer): void => {
    this.stopReplaced?.();
    this.stopReplaced = undefined;
    if (this.state === 'resuming') {
      // A connection dialed to resume closed before the relay confirmed it (e.g. 4410: refused).
      const confirm = this.resumeConfirm;
      this.resumeConfirm = undefined;
      confirm?.reject(new SessionClosedError(code, reason.toString('utf8')));
      return;
    }
    const wasOpen = this.state === 'open';
    // An abnormal close (1006) keeps the socket error seen just before it, which says more.
    const err = code === 1006 && this.lostBy ? this.lostBy : new SessionClosedError(code, reason.toString('utf8'));
    this.lostBy = undefined;
    if (wasOpen && !this.closedByUs && this.resumeToken !== undefined && RESUMABLE_CLOSES.has(code)) {
      void this.reattach(err);
      return;
    }
    this.state = 'closed';
    if (wasOpen && !this.closedByUs && code !== 1000) {
      this.closeErr = err;
      this.onerror?.(err);
    }
    if (wasOpen || this.closedByUs) this.fireClose();
  };

  private fireClose(): void {
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) w();
    if (this.oncloseFired) return;
    this.oncloseFired = true;
    this.onclose?.();
  }
}
