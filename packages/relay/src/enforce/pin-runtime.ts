import { watch, type FSWatcher } from 'node:fs';
import { basename } from 'node:path';
import { GuardError, PinStore, type PinEvent, type PinMode } from '@switchboard/guard';
import type { Logger } from '@switchboard/common';
import type { AuditSink } from '../audit/sink.js';
import { RelayError } from '../errors.js';
import { answerRequest, lockHolderAlive, readLock, releaseLock, spoolDir, takeLock, takeRequests, type ApprovalResult } from '../internal/pin-spool.js';
import type { RelayMetrics } from '../metrics.js';
import type { CompiledServer } from '../policy/compile.js';
import type { PinsOptions } from '../config/enforcement-config.js';

/** ApprovalListener hears which server had definitions approved. */
export type ApprovalListener = (server: string) => void;

/**
 * PinRuntime is the relay's side of tool pinning: the {@link PinStore} (a file, or memory when no
 * `pins.path` is configured), the pinning mode of each server, the audit records of drifts and
 * approvals, and approvals from `switchboard tools approve` (see `internal/pin-spool.ts`).
 */
export class PinRuntime {
  readonly store: PinStore;
  /** path is the pin store file, when there is one. */
  readonly path: string | undefined;
  private readonly audit: AuditSink;
  private readonly metrics: RelayMetrics;
  private readonly log: Logger;
  private readonly listeners = new Set<ApprovalListener>();
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private draining: Promise<void> | undefined;
  private again = false;
  private closed = false;

  private constructor(store: PinStore, path: string | undefined, deps: { audit: AuditSink; metrics: RelayMetrics; logger: Logger }) {
    this.store = store;
    this.path = path;
    this.audit = deps.audit;
    this.metrics = deps.metrics;
    this.log = deps.logger;
  }

  /**
   * PinRuntime.open loads the pin store at `options.path` (or makes a memory store), takes its
   * lock and starts taking approval requests. Throws `RELAY_ERR_CONFIG` when the file is unreadable
   * or not a pin store, or when another live relay holds it.
   */
  static async open(options: PinsOptions | undefined, deps: { audit: AuditSink; metrics: RelayMetrics; logger: Logger }): Promise<PinRuntime> {
    if (options === undefined) {
      deps.logger.warn({}, 'relay.yaml has no pins.path: tool definitions are pinned (tofu) in memory and the pins are lost at restart; set pins.path to keep them');
      return new PinRuntime(PinStore.memory(), undefined, deps);
    }
    const path = options.path;
    const holder = await readLock(path);
    if (holder !== undefined && holder.pid !== process.pid && lockHolderAlive(holder)) {
      throw new RelayError('RELAY_ERR_CONFIG', `config: pins.path: ${path} is in use by another relay (pid ${holder.pid} on ${holder.host}); each relay needs its own pin store`);
    }
    let store: PinStore;
    try {
      store = await PinStore.open(path, {
        onWriteError: (err) => deps.logger.error({ err: err.message }, 'pin store write failed; retrying on the next change'),
      });
    } catch (err) {
      if (err instanceof GuardError) throw new RelayError('RELAY_ERR_CONFIG', `config: pins.path: ${err.code}: ${err.message}`, { cause: err });
      throw err;
    }
    await takeLock(path);
    const rt = new PinRuntime(store, path, deps);
    rt.startSpool(options.pollMs ?? 1000);
    return rt;
  }

  /**
   * modeFor is how `server` is pinned: its policy's `pinning.mode`, else `tofu` — with a pin store
   * file or without one (in memory) — or off (`undefined`) when the policy says `off`.
   */
  modeFor(server: CompiledServer | undefined): PinMode | undefined {
    const mode = server?.pinning;
    if (mode === 'off') return undefined;
    return mode ?? 'tofu';
  }

  /** record counts and audits the events of one evaluation or approval. */
  record(events: readonly PinEvent[], connector: string | null, approvedBy?: string): void {
    for (const e of events) {
      this.metrics.pinEvents[e.type]++;
      if (e.type === 'drift') {
        this.log.warn({ server: e.server, tool: e.tool, pinned: e.previousHash, seen: e.hash }, 'tool definition drifted from its pin; hidden until approved');
        this.audit.write({
          type: 'pin.drift',
          server: e.server,
          connector,
          kind: 'tool',
          name: e.tool,
          pinnedHash: e.previousHash ?? '',
          observedHash: e.hash,
        });
      } else if (e.type === 'approved') {
        this.audit.write({
          type: 'pin.approve',
          server: e.server,
          kind: 'tool',
          name: e.tool,
          previousHash: e.previousHash ?? null,
          approvedHash: e.hash,
          approvedBy: approvedBy ?? 'unknown',
        });
      } else if (e.type === 'pending') {
        this.log.info({ server: e.server, tool: e.tool, hash: e.hash }, 'tool awaits approval (strict pinning)');
      }
    }
  }

  /** approve approves pending definitions of `server` (all when `names` is undefined), audits and tells listeners. */
  approve(server: string, names: readonly string[] | undefined, by: string): PinEvent[] {
    const events = this.store.approve(server, names);
    this.record(events, null, by);
    if (events.length > 0) for (const l of this.listeners) l(server);
    return events;
  }

  /** onApproved registers `listener` for approvals; returns a function that removes it. */
  onApproved(listener: ApprovalListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private startSpool(pollMs: number): void {
    const path = this.path as string;
    const dir = spoolDir(path);
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, file) => {
        if (file === null || String(file).endsWith('.json')) this.drainSpool();
      });
      this.watcher.on('error', () => undefined);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, dir }, 'cannot watch the pin approval directory; polling only');
    }
    this.poller = setInterval(() => this.drainSpool(), pollMs);
    this.poller.unref();
    this.drainSpool();
  }

  /** drainSpool applies waiting approval requests (one pass at a time). */
  drainSpool(): void {
    if (this.path === undefined || this.closed) return;
    if (this.draining !== undefined) {
      this.again = true;
      return;
    }
    const path = this.path;
    this.draining = (async () => {
      do {
        this.again = false;
        for (const { id, request, error } of await takeRequests(path)) {
          let result: ApprovalResult;
          if (request === undefined) {
            result = { ok: false, error: error ?? 'malformed request' };
          } else {
            const events = this.approve(request.server, request.tools ?? undefined, request.by);
            this.log.info({ server: request.server, approved: events.map((e) => e.tool), by: request.by }, 'tool definitions approved');
            try {
              await this.store.flush();
              result = { ok: true, approved: events.map((e) => ({ tool: e.tool, hash: e.hash, previousHash: e.previousHash ?? null })) };
            } catch (err) {
              result = { ok: false, error: `approved in the running relay, but the pin file could not be written: ${(err as Error).message}` };
            }
          }
          await answerRequest(path, id, result).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'cannot answer a pin approval request'));
        }
      } while (this.again && !this.closed);
    })()
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'pin approval requests could not be read'))
      .finally(() => {
        this.draining = undefined;
      });
  }

  /** close stops taking requests, flushes the store and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.close();
    if (this.poller) clearInterval(this.poller);
    await this.draining;
    try {
      await this.store.close();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'pin store could not be flushed');
    }
    if (this.path !== undefined) await releaseLock(this.path).catch(() => undefined);
  }

  /** describe names the store for logs. */
  describe(): string {
    return this.path === undefined ? 'memory' : basename(this.path);
  }
}
