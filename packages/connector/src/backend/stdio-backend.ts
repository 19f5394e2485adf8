import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ReadBuffer } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { OpenPayload } from '@switchboard/protocol';
import type { StdioServerConfig } from '../config.js';
import { BackendError } from '../errors.js';
import { coalesce } from '@switchboard/common';
import type { Logger } from '@switchboard/common';
import type { BackendSession, BackendSink } from './backend.js';
import { JsonRpcLineBuffer } from './json-rpc-lines.js';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsCatcher } from '../sandbox/dns-catcher.js';
import { EgressProxy, type EgressDenial } from '../sandbox/egress-proxy.js';
import { SANDBOX_RUN_DIR, bwrapCommand, type SandboxPlan } from '../sandbox/sandbox.js';
import { RouteWatch } from '../sandbox/route-watch.js';

/** MAX_BACKEND_MESSAGE_BYTES bounds one server → agent message (protocol limit: 16 MiB). */
export const MAX_BACKEND_MESSAGE_BYTES = 16 * 1024 * 1024;
const MAX_STDERR_LINE = 4096;
const NEWLINE = Buffer.from('\n');
const STDERR_TAIL_LINES = 5;
/** AGENT_FILE is the file in a pre-spawned process's directory that names its agent once assigned. */
export const AGENT_FILE = 'agent.json';

/**
 * StdioBackend runs one MCP server process for one agent session through the SDK's
 * `StdioClientTransport` (its framing, its process handling), used as a raw message pipe. The
 * process gets the configured env on top of the SDK's small default environment, plus
 * `SWITCHBOARD_AGENT_ID` (and `SWITCHBOARD_AGENT_JWT_SVID` when the relay sent one). Its stderr
 * goes to the connector's log. The transport reads stdout through a {@link JsonRpcLineBuffer}, so
 * each message reaches the session with the line it came from and is forwarded as those bytes.
 *
 * A pre-spawned process (a warm pool's, `open` undefined) cannot have the agent in its
 * environment: it gets `SWITCHBOARD_AGENT_FILE` instead, naming a file in its private directory
 * that {@link StdioBackend.assign} writes (`{"agent", "jwtSvid"?}`, mode 0600, atomically) before
 * the session's first byte reaches the process. docs/performance.md, "Warm pools".
 */
export class StdioBackend implements BackendSession {
  private readonly transport: StdioClientTransport;
  private sink: BackendSink;
  private logger: Logger;
  private readonly command: string;
  private readonly lines: JsonRpcLineBuffer | undefined;
  private child: ChildProcess | undefined;
  private closing = false;
  // Sizes of messages written to stdin, in order: the SDK resolves sends in write order.
  private sizes: number[] = [];
  private sizesHead = 0;
  /** awaitingDrain counts raw writes made while stdin was backed up: one 'drain' listener credits them all. */
  private awaitingDrain = 0;
  private stderrPartial = '';
  private readonly stderrTail: string[] = [];
  private readonly plan: SandboxPlan | undefined;
  /** sessionDir is this session's private directory (the egress proxy's socket, a pooled process's agent file), when it needs one. */
  private readonly sessionDir: string | undefined;
  private proxy: EgressProxy | undefined;
  private dns: DnsCatcher | undefined;
  private routes: RouteWatch | undefined;

  /**
   * A `plan` runs the process inside the server's sandbox (bubblewrap): the command line becomes
   * bwrap's, and with egress rules this session gets its own egress proxy. `shared` (isolation:
   * shared) gives the process no agent identity: it serves every agent.
   */
  constructor(config: StdioServerConfig, open: OpenPayload | undefined, sink: BackendSink, logger: Logger, plan?: SandboxPlan, shared = false) {
    this.sink = sink;
    this.logger = logger;
    this.command = config.command;
    this.plan = plan;
    let command = config.command;
    let args = [...config.args];
    let env: Record<string, string> = { ...config.env };
    if (plan?.policy || (open === undefined && !shared)) {
      this.sessionDir = mkdtempSync(join(tmpdir(), 'switchboard-session-'));
      if (plan?.policy) {
        writeFileSync(join(this.sessionDir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions attempts:1 timeout:2\n');
        writeFileSync(join(this.sessionDir, 'hosts'), '127.0.0.1 localhost\n::1 localhost\n');
      }
    }
    if (plan) {
      const wrapped = bwrapCommand(plan, config.command, config.args, this.sessionDir);
      command = wrapped.command;
      args = wrapped.args;
      // The configured env may set HOME; the proxy variables always point at the egress proxy.
      const { HOME, ...proxyVars } = wrapped.env;
      env = { ...(HOME !== undefined ? { HOME } : {}), ...config.env, ...proxyVars };
    }
    if (shared) {
      // One process for every agent (isolation: shared): no agent identity at all.
    } else if (open !== undefined) {
      env.SWITCHBOARD_AGENT_ID = open.agent;
      if (open.jwtSvid) env.SWITCHBOARD_AGENT_JWT_SVID = open.jwtSvid;
    } else {
      env.SWITCHBOARD_AGENT_FILE = join(plan ? SANDBOX_RUN_DIR : (this.sessionDir as string), AGENT_FILE);
    }
    this.transport = new StdioClientTransport({
      command,
      args,
      env,
      cwd: config.cwd,
      stderr: 'pipe',
      maxBufferSize: MAX_BACKEND_MESSAGE_BYTES + 1,
    });
    // The SDK keeps its line reader private; swap in ours only where it is the ReadBuffer we know.
    // Otherwise the SDK's own decoder runs and the session serialises each message itself.
    const t = this.transport as unknown as { _readBuffer?: unknown };
    if (t._readBuffer instanceof ReadBuffer) {
      this.lines = new JsonRpcLineBuffer({ maxBufferSize: MAX_BACKEND_MESSAGE_BYTES + 1 });
      t._readBuffer = this.lines;
    }
    this.transport.onmessage = this.onMessage;
    this.transport.onerror = this.onError;
    this.transport.onclose = this.onClose;
    (this.transport.stderr as Readable).on('data', this.onStderr);
  }

  /**
   * assign gives a pre-spawned process its session: the agent file is written (atomically, 0600)
   * for the process to read, and from now on its output, exit and egress denials go to `sink`.
   */
  assign(open: OpenPayload, sink: BackendSink, logger: Logger): void {
    const dir = this.sessionDir as string;
    const body = JSON.stringify({ agent: open.agent, ...(open.jwtSvid ? { jwtSvid: open.jwtSvid } : {}) });
    writeFileSync(join(dir, `${AGENT_FILE}.tmp`), body, { mode: 0o600 });
    renameSync(join(dir, `${AGENT_FILE}.tmp`), join(dir, AGENT_FILE));
    this.sink = sink;
    this.logger = logger;
  }

  /** exited is true once the process ended (or the session was closed). */
  get exited(): boolean {
    return this.closing;
  }

  /** pid is the backend process id once started. */
  get pid(): number | null {
    return this.transport.pid;
  }

  async start(): Promise<void> {
    try {
      if (this.plan?.policy && this.sessionDir) {
        const policy = this.plan.policy;
        this.proxy = await EgressProxy.listen({ policy, socketPath: join(this.sessionDir, 'egress.sock'), onDenied: this.onEgressDenied });
        this.dns = await DnsCatcher.listen(join(this.sessionDir, 'dns.sock'), (name) => {
          // Every name is refused here; one no egress rule allows is also reported (port 53).
          if (!policy.allowsName(name)) this.onEgressDenied({ destination: name, port: 53, reason: `DNS query for ${name}, which no egress rule allows (a contained server resolves nothing itself)` });
        });
      }
      await this.transport.start();
    } catch (err) {
      this.cleanUp();
      throw new BackendError(`cannot start ${this.command}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    // The SDK keeps the child private; it is needed to pause stdout and to report the exit status.
    // Best effort: without it the session still works, bounded by the output buffer.
    const child = (this.transport as unknown as { _process?: ChildProcess })._process;
    if (child && typeof child.once === 'function') this.child = child;
    // Connections tried around the proxy get no route; the kernel counts them, without destinations.
    if (this.plan?.policy && this.child?.pid !== undefined) {
      this.routes = new RouteWatch(this.child.pid, (total) =>
        this.onEgressDenied({ destination: 'direct', port: 0, reason: `${total} connection attempt${total === 1 ? '' : 's'} around the egress proxy (no route out of the sandbox; the kernel drops them before a destination is seen)` }),
      );
    }
  }

  send(message: JSONRPCMessage, bytes: number): void {
    this.sizes.push(bytes);
    this.transport.send(message).then(this.onSent, this.onSendFailed);
  }

  /**
   * sendRaw writes the relay's bytes and a newline to the server's stdin, as the SDK's `send` would
   * write its re-serialisation of them (same stream, same order, credit back once written or
   * drained), without a JSON.parse and JSON.stringify per message. A message that starts with
   * anything but `{` or holds a CR or LF byte (whitespace between tokens, which would break the
   * newline framing) goes through `send` instead.
   */
  sendRaw(data: Buffer): boolean {
    const stdin = this.child?.stdin;
    if (!stdin || stdin.destroyed || data[0] !== 0x7b || data.includes(0x0a) || data.includes(0x0d)) return false;
    this.sizes.push(data.length);
    // The messages of one link read leave in one write to the pipe, not a syscall each.
    coalesce(stdin);
    stdin.write(data);
    const flowing = stdin.write(NEWLINE);
    if (flowing) queueMicrotask(this.onSent);
    else if (this.awaitingDrain++ === 0) stdin.once('drain', this.onDrain);
    return true;
  }

  pause(): void {
    this.child?.stdout?.pause();
  }

  resume(): void {
    this.child?.stdout?.resume();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.routes?.poll();
    await this.transport.close().catch((err: unknown) => this.logger.debug({ err: (err as Error).message }, 'backend close failed'));
    this.cleanUp();
  }

  /** cleanUp stops the egress proxy and removes the session's directory. */
  private cleanUp(): void {
    const { proxy, dns } = this;
    this.routes?.stop();
    this.proxy = undefined;
    this.dns = undefined;
    void proxy?.close();
    void dns?.close();
    if (this.sessionDir) rmSync(this.sessionDir, { recursive: true, force: true });
  }

  private readonly onEgressDenied = (denial: EgressDenial): void => {
    this.logger.warn({ destination: denial.destination, port: denial.port, reason: denial.reason }, 'egress denied');
    this.sink.egressDenied?.(denial);
  };

  private readonly onMessage = (message: JSONRPCMessage): void => {
    if (!this.closing) this.sink.message(message, this.lines?.lineOf(message));
  };

  private readonly onDrain = (): void => {
    const n = this.awaitingDrain;
    this.awaitingDrain = 0;
    for (let i = 0; i < n; i++) this.onSent();
  };

  private readonly onSent = (): void => {
    const bytes = this.sizes[this.sizesHead++] ?? 0;
    if (this.sizesHead > 1024 && this.sizesHead * 2 > this.sizes.length) {
      this.sizes = this.sizes.slice(this.sizesHead);
      this.sizesHead = 0;
    }
    if (!this.closing) this.sink.written(bytes);
  };

  private readonly onSendFailed = (err: unknown): void => {
    // The process is gone or its stdin broke; onclose reports the end of the session.
    this.logger.debug({ err: (err as Error).message }, 'write to backend failed');
  };

  private readonly onError = (err: Error): void => {
    if (!this.closing) this.logger.warn({ err: err.message }, 'backend transport error');
  };

  private readonly onClose = (): void => {
    if (this.closing) return;
    this.closing = true;
    const code = this.child?.exitCode;
    const signal = this.child?.signalCode;
    const how = code !== null && code !== undefined ? `with code ${code}` : signal ? `on ${signal}` : '';
    this.logger.warn({ exitCode: code ?? null, signal: signal ?? null, stderrTail: this.stderrTail }, 'backend process exited');
    this.cleanUp();
    this.sink.ended(`backend process exited${how ? ` ${how}` : ''}`);
  };

  private readonly onStderr = (chunk: Buffer): void => {
    let text = this.stderrPartial + chunk.toString('utf8');
    let nl = text.indexOf('\n');
    while (nl >= 0) {
      this.stderrLine(text.slice(0, nl));
      text = text.slice(nl + 1);
      nl = text.indexOf('\n');
    }
    if (text.length > MAX_STDERR_LINE) {
      this.stderrLine(text);
      text = '';
    }
    this.stderrPartial = text;
  };

  private stderrLine(raw: string): void {
    const line = raw.replace(/\r$/, '').slice(0, MAX_STDERR_LINE);
    if (line.length === 0) return;
    this.stderrTail.push(line);
    if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
    this.logger.debug({ line }, 'backend stderr');
  }
}
