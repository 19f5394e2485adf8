import type { Readable, Writable } from 'node:stream';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { SpiffeId } from '@switchboard/pki';
import type { EnrollSetting } from '@switchboard/protocol';
import { AgentError } from '../errors.js';
import { AgentIdentity, type AgentIdentitySpec } from '../identity.js';
import { silentLogger, type Logger } from '@switchboard/common';
import { RelayClientTransport } from '../relay-client-transport.js';

const RELAY_HIGH_WATER_BYTES = 1024 * 1024;
/** How long after stdin closes the bridge still waits for replies to requests already sent. */
const STDIN_END_GRACE_MS = 5000;

/** StdioBridgeOptions configure {@link runStdioBridge}. */
export interface StdioBridgeOptions {
  relay: string | URL;
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
}

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
  try {
    identity = await openIdentity(options, logger);
    relay = new RelayClientTransport({
      relay: options.relay,
      server: options.server,
      identity,
      ...(options.relayId !== undefined ? { relayId: options.relayId } : {}),
      ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
    });
    await relay.start();
  } catch (err) {
    if (err instanceof AgentError) return { exitCode: 1, error: err };
    throw err;
  }
  logger.info({ relay: relay.url }, 'session open');
  const renewing = typeof options.identity === 'string' && options.renew !== false;
  if (renewing) identity.startRenewal(options.relay.toString(), { ...(options.relayId !== undefined ? { relayId: options.relayId } : {}), logger });
  try {
    return await new StdioBridge(relay, options, logger).run();
  } finally {
    // An identity the bridge opened (a directory, the Workload API) is the bridge's to stop.
    if (!(options.identity instanceof AgentIdentity)) await identity.close();
  }
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

  constructor(
    private readonly relay: RelayClientTransport,
    options: StdioBridgeOptions,
    private readonly logger: Logger,
  ) {
    this.stdin = options.stdin;
    this.stdout = options.stdout;
    this.stdio = new StdioServerTransport(options.stdin, options.stdout);
  }

  run(): Promise<StdioBridgeResult> {
    const result = new Promise<StdioBridgeResult>((resolve) => {
      this.resolve = resolve;
    });
    this.relay.onmessage = this.fromRelay;
    this.relay.onerror = this.onRelayError;
    this.relay.onclose = this.onRelayClose;
    this.stdio.onmessage = this.fromClient;
    this.stdio.onerror = this.onClientError;
    this.stdin.on('end', this.onStdinEnd);
    this.stdin.on('close', this.onStdinEnd);
    this.stdout.on('error', this.onStdoutError);
    void this.stdio.start();
    return result;
  }

  private readonly fromClient = (message: JSONRPCMessage): void => {
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
    if (err) this.logger.error({ code: err.code, err: err.message }, 'the relay ended the session');
    this.finish(err ? 1 : 0, err);
  };

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
