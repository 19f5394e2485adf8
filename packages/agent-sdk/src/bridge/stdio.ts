import type { Readable, Writable } from 'node:stream';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { SpiffeId } from '@switchboard/pki';
import type { EnrollSetting } from '@switchboard/protocol';
import { AgentError, SessionClosedError } from '../errors.js';
import { AgentIdentity, type AgentIdentitySpec } from '../identity.js';
import { silentLogger, type Logger } from '@switchboard/common';
import { LOST_CALL_ERROR, RelayClientTransport, lostReply } from '../relay-client-transport.js';
/** LOST_CALL_ERROR is the JSON-RPC error each call unanswered when a relay session is lost gets (it may or may not have run). */
export { LOST_CALL_ERROR };

const RELAY_HIGH_WATER_BYTES = 1024 * 1024;
/** How long after stdin closes the bridge still waits for replies to requests already sent. */
const STDIN_END_GRACE_MS = 5000;

/** StdioBridgeOptions configure {@link runStdioBridge}. */
export interface StdioBridgeOptions {
  /** relay is the relay's base URL, or several: each session opens on the first that accepts it. */
  relay: string | URL | readonly (string | URL)[];
  server: string;
  /** identity is an identity directory, `{ workloadApi: { endpoint? } }` (the SPIFFE Workload API), or an identity in memory. */
  identity: AgentIdentitySpec;
  relayId?: string | SpiffeId;
  /** enroll gets the first identity into an empty identity directory with a single-use token. */
  enroll?: EnrollSetting;
  /** stdin carries newline-delimited JSON-RPC from the MCP client. */
  stdin: Readable;
  /** stdout receives the replies; nothing else is ever written to it. */
  stdout: Writable;
  logger?: Logger;
  handshakeTimeoutMs?: number;
  /**
   * renew renews an identity read from a directory over the relay at half its lifetime and moves
   * the session to each new certificate (default on; docs/identity.md). The relay must hold an
   * issuer; without one the session ends at the certificate's expiry (4402).
   */
  renew?: boolean;
  /**
   * reopen opens a new relay session when the one in use is lost for a reason a new session can
   * cure (relay restart or crash 1001/1006/1011, connector link lost 4509, no connector 4503, backend
   * failure 4502): through the next relay that accepts it, replaying the client's `initialize`.
   * Each call unanswered at the loss gets `-32052`. Default on; `false` ends the bridge instead
   * (exit 1). At most 5 reopens a minute. A session that can be resumed is resumed first (below);
   * a new one is opened only when that fails.
   */
  reopen?: boolean;
  /**
   * resume resumes the same server session through another relay (or the same one back) when the
   * relay in use dies, shuts down or loses the connector's link, within the connector's grace
   * period: the MCP client sees only `-32052` for calls that were in flight. Default on.
   */
  resume?: boolean;
}

const MAX_REOPENS_PER_MINUTE = 5;
const REOPEN_INIT_TIMEOUT_MS = 15_000;
const MAX_QUEUED_WHILE_REOPENING = 1000;

/** StdioBridgeResult is how the bridge ended: exit code 0 when stdin closed or the session ended normally, 1 with the error otherwise. */
export interface StdioBridgeResult {
  readonly exitCode: 0 | 1;
  readonly error: AgentError | undefined;
}

/**
 * runStdioBridge connects an unmodified stdio MCP client (Claude Desktop, Cursor, VS Code, the MCP
 * Inspector) to a server behind the relay: it opens the relay session first (so a refusal ends the
 * bridge before the client is kept waiting), then forwards each message from stdin as one frame
 * and each frame to stdout, both ways with backpressure. It uses the SDK's `StdioServerTransport`
 * as the stdin/stdout pipe. Resolves when stdin closes (0) or the relay ends the session.
 *
 * @example
 * const { exitCode, error } = await runStdioBridge({ relay, server: 'crm', identity: './ids/me', stdin: process.stdin, stdout: process.stdout });
 */
export async function runStdioBridge(options: StdioBridgeOptions): Promise<StdioBridgeResult> {
  const logger = (options.logger ?? silentLogger).child({ component: 'agent-stdio', server: options.server });
  let relay: RelayClientTransport;
  let identity: AgentIdentity;
  let transport: () => RelayClientTransport;
  try {
    identity = await openIdentity(options, logger);
    const opened = identity;
    transport = () =>
      new RelayClientTransport({
        relay: options.relay,
        server: options.server,
        identity: opened,
        ...(options.relayId !== undefined ? { relayId: options.relayId } : {}),
        ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
        ...(options.resume !== undefined ? { resumption: options.resume } : {}),
      });
    relay = transport();
    await relay.start();
  } catch (err) {
    if (err instanceof AgentError) return { exitCode: 1, error: err };
    throw err;
  }
  logger.info({ relay: relay.url }, 'session open');
  const renewing = typeof options.identity === 'string' && options.renew !== false;
  if (renewing) identity.startRenewal(relayList(options.relay), { ...(options.relayId !== undefined ? { relayId: options.relayId } : {}), logger });
  try {
    return await new StdioBridge(relay, transport, options, logger).run();
  } finally {
    // An identity the bridge opened (a directory, the Workload API) is the bridge's to stop.
    if (!(options.identity instanceof AgentIdentity)) await identity.close();
  }
}

/** relayList is the relay option as a list of URL strings (renewal tries each in turn). */
export function relayList(relay: string | URL | readonly (string | URL)[]): string[] {
  return typeof relay === 'string' || relay instanceof URL ? [relay.toString()] : relay.map((r) => r.toString());
}

/** openIdentity opens a bridge's identity: enrolling first when asked, following the Workload API when named. */
export function openIdentity(options: { identity: AgentIdentitySpec; enroll?: EnrollSetting; relayId?: string | SpiffeId }, logger: Logger): Promise<AgentIdentity> {
  return AgentIdentity.open(options.identity, {
    ...(options.enroll !== undefined ? { enroll: options.enroll } : {}),
    ...(options.relayId !== undefined ? { relayId: options.relayId } : {}),
    logger,
  });
}

class StdioBridge {
  private readonly stdio: StdioServerTransport;
  private readonly stdin: Readable;
  private readonly stdout: Writable;
  private readonly pending = new Set<string | number>();
  private stdinEnded = false;
  private graceTimer: NodeJS.Timeout | undefined;
  private inPaused = false;
  private outPaused = false;
  private done = false;
  private resolve!: (r: StdioBridgeResult) => void;
  private readonly reopenAllowed: boolean;
  // The client's initialize request, replayed on each new session (and its initialized notification).
  private initialize: JSONRPCMessage | undefined;
  private initialized: JSONRPCMessage | undefined;
  private reopening: JSONRPCMessage[] | undefined;
  private readonly reopens: number[] = [];

  constructor(
    private relay: RelayClientTransport,
    private readonly transport: () => RelayClientTransport,
    options: StdioBridgeOptions,
    private readonly logger: Logger,
  ) {
    this.stdin = options.stdin;
    this.stdout = options.stdout;
    this.stdio = new StdioServerTransport(options.stdin, options.stdout);
    this.reopenAllowed = options.reopen !== false;
  }

  private wire(relay: RelayClientTransport): void {
    relay.onresume = () => this.logger.warn({ relay: relay.url, unanswered: this.pending.size }, 'relay session lost; resumed through another connection, the same server session');
    relay.onmessage = this.fromRelay;
    relay.onerror = this.onRelayError;
    relay.onclose = this.onRelayClose;
  }

  run(): Promise<StdioBridgeResult> {
    const result = new Promise<StdioBridgeResult>((resolve) => {
      this.resolve = resolve;
    });
    this.wire(this.relay);
    this.stdio.onmessage = this.fromClient;
    this.stdio.onerror = this.onClientError;
    this.stdin.on('end', this.onStdinEnd);
    this.stdin.on('close', this.onStdinEnd);
    this.stdout.on('error', this.onStdoutError);
    void this.stdio.start();
    return result;
  }

  private readonly fromClient = (message: JSONRPCMessage): void => {
    if ('method' in message && message.method === 'initialize' && 'id' in message) this.initialize ??= message;
    if ('method' in message && message.method === 'notifications/initialized' && !('id' in message)) this.initialized ??= message;
    if (this.reopening !== undefined) {
      // A new session is being opened: hold the client's messages (bounded) until it is ready.
      if (this.reopening.length < MAX_QUEUED_WHILE_REOPENING) this.reopening.push(message);
      else if ('method' in message && 'id' in message) void this.stdio.send(lostReply(message.id));
      return;
    }
    if ('method' in message && 'id' in message) this.pending.add(message.id);
    const sent = this.relay.send(message);
    sent.catch(this.onSendFailed);
    if (!this.inPaused && this.relay.bufferedAmount > RELAY_HIGH_WATER_BYTES) {
      // The relay is not taking our input as fast as the client writes it: stop reading stdin.
      this.inPaused = true;
      this.stdin.pause();
      sent.then(this.resumeStdin, this.resumeStdin);
    }
  };

  private readonly resumeStdin = (): void => {
    this.inPaused = false;
    if (!this.done) this.stdin.resume();
  };

  private readonly fromRelay = (message: JSONRPCMessage): void => {
    void this.stdio.send(message);
    if (!('method' in message) && 'id' in message && message.id !== undefined && this.pending.delete(message.id) && this.stdinEnded && this.pending.size === 0) {
      this.finish(0, undefined);
      return;
    }
    if (!this.outPaused && this.stdout.writableNeedDrain) {
      // The client is not reading its stdout: stop reading the relay; its credit does the rest.
      this.outPaused = true;
      this.relay.pause();
      this.stdout.once('drain', this.resumeRelay);
    }
  };

  private readonly resumeRelay = (): void => {
    this.outPaused = false;
    this.relay.resume();
  };

  private readonly onSendFailed = (err: unknown): void => {
    this.logger.debug({ err: (err as Error).message }, 'message to the relay not sent');
  };

  private readonly onClientError = (err: Error): void => {
    this.logger.warn({ err: err.message }, 'ignored a malformed message from the MCP client');
  };

  private readonly onRelayError = (err: Error): void => {
    if (!(err instanceof AgentError)) this.logger.warn({ err: err.message }, 'ignored a malformed frame from the relay');
  };

  private readonly onRelayClose = (): void => {
    const err = this.relay.closeError;
    if (err && this.mayReopen(err)) {
      void this.reopen(err);
      return;
    }
    if (err) this.logger.error({ code: err.code, err: err.message }, 'the relay ended the session');
    this.finish(err ? 1 : 0, err);
  };

  private mayReopen(err: AgentError): boolean {
    if (!this.reopenAllowed || this.done || this.stdinEnded || this.initialize === undefined) return false;
    if (!(err instanceof SessionClosedError) || !err.retryable) return false;
    const now = Date.now();
    while (this.reopens.length > 0 && (this.reopens[0] as number) < now - 60_000) this.reopens.shift();
    return this.reopens.length < MAX_REOPENS_PER_MINUTE;
  }

  // The session is gone: answer what it left unanswered, open a new one (failover across the
  // relays), replay initialize, then carry on with what the client sent meanwhile.
  private async reopen(lost: AgentError): Promise<void> {
    this.reopens.push(Date.now());
    this.reopening = [];
    this.logger.warn({ code: lost.code, err: lost.message, unanswered: this.pending.size }, 'relay session lost; opening a new one');
    for (const id of this.pending) void this.stdio.send(lostReply(id));
    this.pending.clear();
    if (this.outPaused) {
      this.outPaused = false;
      this.stdout.off('drain', this.resumeRelay);
    }
    const next = this.transport();
    try {
      await next.start();
      await replayInitialize(next, this.initialize as JSONRPCMessage & { id: string | number }, this.initialized);
    } catch (err) {
      await next.close().catch(() => undefined);
      const e = err instanceof AgentError ? err : lost;
      this.logger.error({ code: e.code, err: (err as Error).message }, 'could not open a new relay session');
      const queued = this.reopening;
      this.reopening = undefined;
      for (const m of queued) if ('method' in m && 'id' in m) void this.stdio.send(lostReply(m.id));
      this.finish(1, e);
      return;
    }
    if (this.done) {
      await next.close();
      return;
    }
    this.relay = next;
    this.wire(next);
    this.logger.info({ relay: next.url }, 'new relay session open; the MCP client carries on');
    const queued = this.reopening;
    this.reopening = undefined;
    for (const m of queued) this.fromClient(m);
  }

  private readonly onStdinEnd = (): void => {
    if (this.stdinEnded) return;
    this.stdinEnded = true;
    this.logger.info({ awaiting: this.pending.size }, 'stdin closed');
    // A client that wrote its requests and closed stdin (a script, a pipe) still gets its replies.
    if (this.pending.size === 0) this.finish(0, undefined);
    else this.graceTimer = setTimeout(this.onGraceOver, STDIN_END_GRACE_MS);
  };

  private readonly onGraceOver = (): void => {
    this.logger.warn({ unanswered: this.pending.size }, 'closing with requests unanswered');
    this.finish(0, undefined);
  };

  private readonly onStdoutError = (err: Error): void => {
    this.logger.info({ err: err.message }, 'stdout closed');
    this.finish(0, undefined);
  };

  private finish(exitCode: 0 | 1, error: AgentError | undefined): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.graceTimer);
    this.stdin.off('end', this.onStdinEnd);
    this.stdin.off('close', this.onStdinEnd);
    this.stdout.off('error', this.onStdoutError);
    void this.stdio.close();
    void this.relay.close().finally(() => this.resolve({ exitCode, error }));
  }
}


/**
 * replayInitialize sends the client's `initialize` on a new session (under an id of the bridge's
 * own, so its answer never reaches the client, which had its answer), waits for the answer, then
 * sends `notifications/initialized` as the client did.
 */
async function replayInitialize(relay: RelayClientTransport, initialize: JSONRPCMessage & { id: string | number }, initialized: JSONRPCMessage | undefined): Promise<void> {
  const id = `switchboard-reopen-${Date.now()}`;
  const answered = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the new session did not answer initialize in ${REOPEN_INIT_TIMEOUT_MS} ms`)), REOPEN_INIT_TIMEOUT_MS);
    relay.onmessage = (m) => {
      if ('id' in m && m.id === id && !('method' in m)) {
        clearTimeout(timer);
        if ('error' in m) reject(new Error(`the new session refused initialize: ${JSON.stringify(m.error).slice(0, 200)}`));
        else resolve();
      }
    };
    relay.onclose = () => {
      clearTimeout(timer);
      reject(relay.closeError ?? new Error('the new session closed during initialize'));
    };
  });
  await relay.send({ ...initialize, id } as JSONRPCMessage);
  await answered;
  if (initialized !== undefined) await relay.send(initialized);
}
