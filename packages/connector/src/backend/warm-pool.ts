import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { OpenPayload } from '@switchboard/protocol';
import type { Logger } from '@switchboard/common';
import type { PoolConfig, StdioServerConfig } from '../config.js';
import type { EgressDenial } from '../sandbox/egress-proxy.js';
import type { SandboxPlan } from '../sandbox/sandbox.js';
import type { BackendSession, BackendSink } from './backend.js';
import { StdioBackend } from './stdio-backend.js';

/** MAX_EARLY_MESSAGES bounds what a pooled process may print before it has a session (then it is retired). */
const MAX_EARLY_MESSAGES = 16;
/** Refill backoff after a pooled process fails to start or dies unused: 1 s doubling to 30 s. */
const REFILL_BACKOFF_MS = 1000;
const MAX_REFILL_BACKOFF_MS = 30_000;
/**
 * REFILL_DELAY_MS: a hand-out refills the pool this long after, not while the session it served is
 * being set up. Spawning blocks the connector's event loop for milliseconds (before the session's
 * OPEN_OK could go out), and the new process's start takes a core for a few hundred milliseconds
 * (while the session's `initialize` runs); a process started now would not be ready for a session
 * within this delay anyway.
 */
export const REFILL_DELAY_MS = 100;

/** PoolCounters are what a warm pool counts (the connector's /metrics). */
export interface PoolCounters {
  /** poolHits: sessions that got a pre-spawned process. */
  poolHits: number;
  /** poolMisses: sessions of a pooled server that spawned cold (the pool was empty or idle). */
  poolMisses: number;
  /** poolRetired: pooled processes that died, misbehaved or idled out before serving a session. */
  poolRetired: number;
}

/**
 * Holding is the sink of a pre-spawned process until a session takes it: output is kept (a few
 * messages at most: a server should say nothing before `initialize`), an exit retires it.
 */
class Holding implements BackendSink {
  early: [JSONRPCMessage, string | undefined][] = [];
  dead = false;
  constructor(private readonly onDead: (why: string) => void) {}
  message(message: JSONRPCMessage, json?: string): void {
    if (this.early.length >= MAX_EARLY_MESSAGES) return this.onDead(`printed more than ${MAX_EARLY_MESSAGES} messages before any session`);
    this.early.push([message, json]);
  }
  written(): void {}
  ended(reason: string): void {
    this.dead = true;
    this.onDead(reason);
  }
  egressDenied(_denial: EgressDenial): void {
    // Nothing to attribute it to yet: the process's own log line (StdioBackend) is the record.
  }
}

interface Warm {
  readonly backend: StdioBackend;
  readonly holding: Holding;
}

/**
 * PooledBackend is a warm process handed to a session: `start` assigns it (the agent file is
 * written, then what the process printed while waiting is delivered) and resolves at once.
 */
class PooledBackend implements BackendSession {
  constructor(
    private readonly warm: Warm,
    private readonly open: OpenPayload,
    private readonly sink: BackendSink,
    private readonly logger: Logger,
  ) {}
  async start(): Promise<void> {
    const { backend, holding } = this.warm;
    if (holding.dead || backend.exited) throw new Error('the pre-spawned process exited before its session started');
    backend.assign(this.open, this.sink, this.logger);
    for (const [m, json] of holding.early) this.sink.message(m, json);
    holding.early = [];
  }
  send(message: JSONRPCMessage, bytes: number): void {
    this.warm.backend.send(message, bytes);
  }
  sendRaw(data: Buffer): boolean {
    return this.warm.backend.sendRaw(data);
  }
  pause(): void {
    this.warm.backend.pause();
  }
  resume(): void {
    this.warm.backend.resume();
  }
  close(): Promise<void> {
    return this.warm.backend.close();
  }
}

/**
 * WarmPool keeps `size` started processes of one stdio server ready, so a new session skips the
 * spawn (docs/performance.md, "Warm pools"). A process serves exactly one session and is never
 * reused; the pool refills in the background shortly after each hand-out ({@link REFILL_DELAY_MS}). A pool that handed out nothing
 * for `idleMs` lets its processes go and refills at the next session. Pre-spawned processes learn
 * their agent from `SWITCHBOARD_AGENT_FILE`, not from their environment (see {@link StdioBackend}).
 */
export class WarmPool {
  private readonly ready: Warm[] = [];
  private starting = 0;
  private closed = false;
  private idle = false;
  private lastTake: number;
  private idleTimer: NodeJS.Timeout | undefined;
  private refillTimer: NodeJS.Timeout | undefined;
  private soonTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(
    readonly server: string,
    private readonly config: StdioServerConfig,
    private readonly pool: PoolConfig,
    private readonly plan: SandboxPlan | undefined,
    private readonly logger: Logger,
    private readonly counters: PoolCounters,
    private readonly now: () => number = Date.now,
  ) {
    this.lastTake = now();
  }

  /** start fills the pool and starts its idle clock. */
  start(): this {
    this.fill();
    if (this.pool.idleMs > 0) {
      this.idleTimer = setInterval(() => this.checkIdle(), Math.min(this.pool.idleMs, 60_000));
      this.idleTimer.unref();
    }
    return this;
  }

  /** size is the number of processes ready to be handed out. */
  get available(): number {
    return this.ready.length;
  }

  /**
   * take hands a ready process to a session (undefined when none is ready: the session spawns
   * cold) and refills in the background.
   */
  take(open: OpenPayload, sink: BackendSink, logger: Logger): BackendSession | undefined {
    this.lastTake = this.now();
    this.idle = false;
    let warm: Warm | undefined;
    while ((warm = this.ready.shift()) !== undefined && (warm.holding.dead || warm.backend.exited)) this.counters.poolRetired++;
    if (warm === undefined) this.counters.poolMisses++;
    else this.counters.poolHits++;
    this.soonTimer ??= setTimeout(() => {
      this.soonTimer = undefined;
      this.fill();
    }, REFILL_DELAY_MS);
    this.soonTimer.unref();
    return warm === undefined ? undefined : new PooledBackend(warm, open, sink, logger);
  }

  /** close stops refilling and ends every waiting process. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.idleTimer);
    clearTimeout(this.refillTimer);
    clearTimeout(this.soonTimer);
    const all = this.ready.splice(0);
    await Promise.all(all.map((w) => w.backend.close()));
  }

  private fill(): void {
    if (this.closed || this.idle || this.refillTimer !== undefined) return;
    while (this.refillTimer === undefined && this.ready.length + this.starting < this.pool.size) this.spawnOne();
  }

  private spawnOne(): void {
    this.starting++;
    const log = this.logger.child({ pooled: true });
    let warm: Warm | undefined;
    const holding = new Holding((why) => {
      if (warm !== undefined) this.retire(warm, why);
    });
    let backend: StdioBackend;
    try {
      backend = new StdioBackend(this.config, undefined, holding, log, this.plan);
    } catch (err) {
      this.starting--;
      this.failed((err as Error).message);
      return;
    }
    warm = { backend, holding };
    backend.start().then(
      () => {
        this.starting--;
        if (holding.dead) {
          this.counters.poolRetired++;
          this.failed('the process exited as soon as it started');
          return;
        }
        if (this.closed || this.idle) {
          void backend.close();
          return;
        }
        this.failures = 0;
        this.ready.push(warm);
      },
      (err: unknown) => {
        this.starting--;
        this.failed((err as Error).message);
      },
    );
  }

  /** retire drops a waiting process that died or misbehaved, and refills. */
  private retire(warm: Warm, why: string): void {
    const i = this.ready.indexOf(warm);
    if (i < 0) return; // not waiting any more (taken, or still starting: its start handler sees `dead`)
    this.ready.splice(i, 1);
    this.counters.poolRetired++;
    this.logger.warn({ reason: why }, 'pre-spawned backend process retired before any session');
    void warm.backend.close();
    this.failed(why);
  }

  /** failed backs the refill off, so a server that cannot start is not respawned in a tight loop. */
  private failed(why: string): void {
    if (this.closed) return;
    this.failures++;
    const delay = Math.min(MAX_REFILL_BACKOFF_MS, REFILL_BACKOFF_MS * 2 ** Math.min(this.failures - 1, 5));
    this.logger.warn({ reason: why, retryInMs: delay }, 'warm pool could not start a backend process');
    if (this.refillTimer !== undefined) return;
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.fill();
    }, delay);
    this.refillTimer.unref();
  }

  private checkIdle(): void {
    if (this.idle || this.now() - this.lastTake < this.pool.idleMs) return;
    this.idle = true;
    const all = this.ready.splice(0);
    this.counters.poolRetired += all.length;
    if (all.length > 0) this.logger.info({ processes: all.length, idleMs: this.pool.idleMs }, 'warm pool idle: its processes stop until the next session');
    for (const w of all) void w.backend.close();
  }
}
