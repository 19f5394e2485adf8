import { readFile } from 'node:fs/promises';
import { GuardError } from '../errors.js';
import { writeFileAtomic } from '@switchboard/common';
import { FILE_VERSION, parsePinFile, type PendingDefinition, type ServerState, type ToolPin } from './pin-file.js';
import { summarizeTool, toolDefinitionHash, validToolName, type ToolDefinition } from './tool-definition.js';

export type { PendingDefinition, ToolPin } from './pin-file.js';

/**
 * PinMode chooses how first sight is treated: `tofu` pins a tool the first time it is seen and
 * shows it; `strict` shows only definitions an operator approved.
 */
export type PinMode = 'tofu' | 'strict';

/** PIN_MODES lists every {@link PinMode}. */
export const PIN_MODES: readonly PinMode[] = Object.freeze(['tofu', 'strict']);

/**
 * DropReason says why {@link PinStore.evaluateToolList} hid a tool: a name outside
 * {@link TOOL_NAME_PATTERN}; a definition that cannot be hashed (nested absurdly deep); a name
 * listed twice; a definition differing from its pin; one not approved yet (strict); or a server
 * past `maxToolsPerServer`.
 */
export type DropReason = 'invalid-name' | 'invalid-definition' | 'duplicate' | 'drift' | 'unapproved' | 'limit';

/** DroppedTool is one tool hidden from a list; `name` is cut to 128 characters (it may be hostile). */
export interface DroppedTool {
  readonly name: string;
  readonly reason: DropReason;
  /** hash is the definition's hash, for `drift` and `unapproved`. */
  readonly hash?: string;
}

/**
 * PinEvent records a change of the pin store, for the audit trail: a tool `pinned` on first sight
 * (tofu), a `drift` seen, a tool `pending` approval (strict), an `approved` definition, a
 * `forgotten` one.
 */
export interface PinEvent {
  readonly type: 'pinned' | 'drift' | 'pending' | 'approved' | 'forgotten';
  readonly server: string;
  readonly tool: string;
  /** hash is the definition the event is about (the new one for drift and approval). */
  readonly hash: string;
  /** previousHash is the pin it replaces or differs from, when there was one. */
  readonly previousHash?: string | null;
  readonly at: string;
}

/** ToolListEvaluation is what {@link PinStore.evaluateToolList} decided for one `tools/list` result. */
export interface ToolListEvaluation<T> {
  /** visible holds the tools that may be shown, in their original order (the same objects). */
  readonly visible: T[];
  readonly dropped: DroppedTool[];
  /** events lists the changes made to the store; an unchanged list yields none. */
  readonly events: PinEvent[];
}

/** ServerPins is a read-only copy of one server's pins and pending definitions. */
export interface ServerPins {
  readonly server: string;
  readonly tools: Readonly<Record<string, ToolPin>>;
  readonly pending: Readonly<Record<string, PendingDefinition>>;
}

/** PinStoreOptions tune a {@link PinStore}. */
export interface PinStoreOptions {
  /** now returns the wall-clock time in ms (default `Date.now`); used for the times recorded. */
  now?: () => number;
  /** flushDelayMs is how long changes collect before one write (default 20 ms). */
  flushDelayMs?: number;
  /** maxToolsPerServer bounds pins + pending per server (default 2048); more new names are dropped as `limit`. */
  maxToolsPerServer?: number;
  /** onWriteError hears about background writes that failed; the store retries on the next change or flush. */
  onWriteError?: (err: GuardError) => void;
}


function cutName(name: unknown): string {
  const s = typeof name === 'string' ? name : '';
  return s.length <= 128 ? s : s.slice(0, 128);
}

/**
 * PinStore keeps each server's pinned tool definitions and the drifts waiting for approval. The
 * in-memory state is the source of truth: every decision reads it and never the file; changes are
 * written back atomically (temporary file + rename), several changes coalesced into one write.
 * Decisions are synchronous and do no I/O.
 *
 * @example
 * const pins = await PinStore.open('./pins.json');
 * const { visible, dropped, events } = pins.evaluateToolList('crm', result.tools, 'tofu');
 * if (!pins.isCallable('crm', 'get_order')) refuse();
 * await pins.close();
 */
export class PinStore {
  /** path is the file the store writes, or `undefined` for a memory-only store. */
  readonly path: string | undefined;
  private readonly servers = new Map<string, ServerState>();
  private readonly now: () => number;
  private readonly flushDelayMs: number;
  private readonly maxTools: number;
  private readonly onWriteError: ((err: GuardError) => void) | undefined;
  private version = 0;
  private writtenVersion = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private waiters: { version: number; resolve: () => void; reject: (err: GuardError) => void }[] = [];
  private closed = false;
  private writeCount = 0;

  private constructor(path: string | undefined, options: PinStoreOptions) {
    this.path = path;
    this.now = options.now ?? Date.now;
    this.flushDelayMs = options.flushDelayMs ?? 20;
    this.maxTools = options.maxToolsPerServer ?? 2048;
    this.onWriteError = options.onWriteError;
    if (!Number.isInteger(this.maxTools) || this.maxTools < 1) throw new TypeError('pinning: maxToolsPerServer must be a positive integer');
    if (!(this.flushDelayMs >= 0)) throw new TypeError('pinning: flushDelayMs must be ≥ 0');
  }

  /**
   * PinStore.open loads `path` (an absent file is an empty store) and returns a store that writes
   * back to it. A file that cannot be read or does not have the expected shape raises
   * `GUARD_ERR_PIN_STORE` — starting over silently would re-pin whatever a server now says.
   */
  static async open(path: string, options: PinStoreOptions = {}): Promise<PinStore> {
    const store = new PinStore(path, options);
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new GuardError('GUARD_ERR_PIN_STORE', `pinning: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
          cause: err,
        });
      }
    }
    if (text !== undefined) for (const [server, state] of parsePinFile(text, path)) store.servers.set(server, state);
    return store;
  }

  /** PinStore.memory returns a store that is never written to disk (tests, dry runs). */
  static memory(options: PinStoreOptions = {}): PinStore {
    return new PinStore(undefined, options);
  }

  private state(server: string): ServerState {
    let s = this.servers.get(server);
    if (s === undefined) {
      s = { tools: new Map(), pending: new Map() };
      this.servers.set(server, s);
    }
    return s;
  }

  private stamp(): string {
    return new Date(this.now()).toISOString();
  }

  /**
   * evaluateToolList decides which tools of one `tools/list` result may be shown for `server`, and
   * updates the store: names outside {@link TOOL_NAME_PATTERN} are dropped; a name listed twice is
   * dropped in every copy; a definition that differs from its pin is dropped (`drift`) and recorded
   * as pending until {@link approve}; in `tofu` mode a new name is pinned and shown, in `strict`
   * mode it is recorded as pending and dropped (`unapproved`), as is a tofu pin never approved.
   * Once a name has a pending definition it stays hidden — even if the server goes back to the
   * pinned definition — until an operator decides.
   */
  evaluateToolList<T>(server: string, tools: readonly T[], mode: PinMode): ToolListEvaluation<T> {
    if (mode !== 'tofu' && mode !== 'strict') throw new TypeError(`pinning: mode must be tofu or strict, not ${String(mode)}`);
    const visible: T[] = [];
    const dropped: DroppedTool[] = [];
    const events: PinEvent[] = [];
    const counts = new Map<string, number>();
    for (const t of tools) {
      const name = (t as { name?: unknown } | null)?.name;
      if (validToolName(name)) counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    const state = this.state(server);
    let at: string | undefined;
    let changed = false;
    for (const t of tools) {
      const tool = t as unknown as ToolDefinition;
      const name: unknown = typeof t === 'object' && t !== null ? tool.name : undefined;
      if (!validToolName(name)) {
        dropped.push({ name: cutName(name), reason: 'invalid-name' });
        continue;
      }
      if ((counts.get(name) ?? 0) > 1) {
        dropped.push({ name, reason: 'duplicate' });
        continue;
      }
      let hash: string;
      try {
        hash = toolDefinitionHash(tool);
      } catch {
        dropped.push({ name, reason: 'invalid-definition' });
        continue;
      }
      const pin = state.tools.get(name);
      const pending = state.pending.get(name);
      if (pending !== undefined) {
        if (hash !== pending.seenHash && hash !== pin?.hash) {
          at ??= this.stamp();
          state.pending.set(name, { pinnedHash: pending.pinnedHash, seenHash: hash, seenAt: at, summary: summarizeTool(tool) });
          events.push({ type: pin ? 'drift' : 'pending', server, tool: name, hash, previousHash: pending.pinnedHash, at });
          changed = true;
        }
        dropped.push({ name, reason: pin && pending.pinnedHash !== pending.seenHash ? 'drift' : 'unapproved', hash });
        continue;
      }
      if (pin === undefined) {
        if (state.tools.size + state.pending.size >= this.maxTools) {
          dropped.push({ name, reason: 'limit', hash });
          continue;
        }
        at ??= this.stamp();
        if (mode === 'tofu') {
          state.tools.set(name, { hash, firstSeen: at, summary: summarizeTool(tool) });
          events.push({ type: 'pinned', server, tool: name, hash, at });
          visible.push(t);
        } else {
          state.pending.set(name, { pinnedHash: null, seenHash: hash, seenAt: at, summary: summarizeTool(tool) });
          events.push({ type: 'pending', server, tool: name, hash, previousHash: null, at });
          dropped.push({ name, reason: 'unapproved', hash });
        }
        changed = true;
        continue;
      }
      if (pin.hash !== hash) {
        at ??= this.stamp();
        state.pending.set(name, { pinnedHash: pin.hash, seenHash: hash, seenAt: at, summary: summarizeTool(tool) });
        events.push({ type: 'drift', server, tool: name, hash, previousHash: pin.hash, at });
        dropped.push({ name, reason: 'drift', hash });
        changed = true;
        continue;
      }
      if (mode === 'strict' && pin.approvedAt === undefined) {
        at ??= this.stamp();
        state.pending.set(name, { pinnedHash: pin.hash, seenHash: hash, seenAt: at, summary: pin.summary });
        events.push({ type: 'pending', server, tool: name, hash, previousHash: pin.hash, at });
        dropped.push({ name, reason: 'unapproved', hash });
        changed = true;
        continue;
      }
      visible.push(t);
    }
    if (changed) this.changed();
    return { visible, dropped, events };
  }

  /**
   * isCallable reports whether calls to `name` on `server` may pass: the tool has a pin, nothing
   * is pending for it, and in `strict` mode the pin was approved. A tool never seen in a list is
   * not callable — its definition was never checked.
   */
  isCallable(server: string, name: string, mode: PinMode = 'tofu'): boolean {
    const s = this.servers.get(server);
    if (s === undefined || s.pending.has(name)) return false;
    const pin = s.tools.get(name);
    return pin !== undefined && (mode === 'tofu' || pin.approvedAt !== undefined);
  }

  /**
   * approve accepts the pending definitions of `names` (every pending one when `names` is
   * omitted): each becomes the pin, marked approved. A named tool with a pin never approved and
   * nothing pending is marked approved. Unknown names are ignored; the events say what changed.
   */
  approve(server: string, names?: readonly string[]): PinEvent[] {
    const s = this.servers.get(server);
    if (s === undefined) return [];
    const events: PinEvent[] = [];
    const at = this.stamp();
    for (const name of names ?? [...s.pending.keys()]) {
      const pending = s.pending.get(name);
      const pin = s.tools.get(name);
      if (pending !== undefined) {
        s.tools.set(name, { hash: pending.seenHash, firstSeen: pin?.firstSeen ?? pending.seenAt, approvedAt: at, summary: pending.summary });
        s.pending.delete(name);
        events.push({ type: 'approved', server, tool: name, hash: pending.seenHash, previousHash: pending.pinnedHash, at });
      } else if (pin !== undefined && pin.approvedAt === undefined) {
        s.tools.set(name, { ...pin, approvedAt: at });
        events.push({ type: 'approved', server, tool: name, hash: pin.hash, previousHash: pin.hash, at });
      }
    }
    if (events.length > 0) this.changed();
    return events;
  }

  /**
   * forget removes the pins and pending definitions of `names` (all of the server's when
   * omitted), so the next list is first sight again. For an operator resetting a server.
   */
  forget(server: string, names?: readonly string[]): PinEvent[] {
    const s = this.servers.get(server);
    if (s === undefined) return [];
    const events: PinEvent[] = [];
    const at = this.stamp();
    for (const name of names ?? [...new Set([...s.tools.keys(), ...s.pending.keys()])]) {
      const pin = s.tools.get(name);
      const pending = s.pending.get(name);
      if (pin === undefined && pending === undefined) continue;
      s.tools.delete(name);
      s.pending.delete(name);
      events.push({ type: 'forgotten', server, tool: name, hash: pending?.seenHash ?? (pin as ToolPin).hash, previousHash: pin?.hash ?? null, at });
    }
    if (s.tools.size === 0 && s.pending.size === 0) this.servers.delete(server);
    if (events.length > 0) this.changed();
    return events;
  }

  /** list returns a copy of the pins and pending definitions of `server`, or of every server. */
  list(server?: string): ServerPins[] {
    const names = server === undefined ? [...this.servers.keys()].sort() : this.servers.has(server) ? [server] : [];
    return names.map((name) => {
      const s = this.servers.get(name) as ServerState;
      return {
        server: name,
        tools: Object.fromEntries([...s.tools].sort(([a], [b]) => (a < b ? -1 : 1))),
        pending: Object.fromEntries([...s.pending].sort(([a], [b]) => (a < b ? -1 : 1))),
      };
    });
  }

  /** writes counts the files written since the store was opened (for metrics and tests). */
  get writes(): number {
    return this.writeCount;
  }

  /** toJSON returns the file form of the store: `{ version: 1, servers: { <server>: { tools, pending } } }`. */
  toJSON(): { version: number; servers: Record<string, { tools: Record<string, ToolPin>; pending: Record<string, PendingDefinition> }> } {
    // fromEntries, not assignment: a server or tool may be called "__proto__".
    const servers = Object.fromEntries(this.list().map((s) => [s.server, { tools: s.tools, pending: s.pending }]));
    return { version: FILE_VERSION, servers };
  }

  private changed(): void {
    this.version++;
    if (this.path === undefined) {
      this.writtenVersion = this.version;
      return;
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.writing !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.writeNow();
    }, this.flushDelayMs);
    this.timer.unref();
  }

  private writeNow(): Promise<void> {
    if (this.writing !== undefined) return this.writing;
    const path = this.path as string;
    const version = this.version;
    const text = `${JSON.stringify(this.toJSON(), null, 2)}\n`;
    this.writing = writeFileAtomic(path, text, { mode: 0o644 }).then(
      () => {
        this.writing = undefined;
        this.writeCount++;
        this.writtenVersion = Math.max(this.writtenVersion, version);
        this.settle(undefined);
        if (this.version > this.writtenVersion) this.schedule();
      },
      (err: unknown) => {
        this.writing = undefined;
        const e = new GuardError('GUARD_ERR_PIN_STORE_WRITE', `pinning: cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
          cause: err,
          retryable: true,
        });
        const hadWaiters = this.settle(e);
        if (!hadWaiters) this.onWriteError?.(e);
      },
    );
    return this.writing;
  }

  private settle(err: GuardError | undefined): boolean {
    const waiting = this.waiters;
    if (waiting.length === 0) return false;
    const keep: typeof waiting = [];
    for (const w of waiting) {
      if (err !== undefined) w.reject(err);
      else if (w.version <= this.writtenVersion) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
    return true;
  }

  /**
   * flush resolves once every change made before the call is on disk (at once for a memory store
   * or when nothing changed); rejects with `GUARD_ERR_PIN_STORE_WRITE` when the write fails.
   */
  flush(): Promise<void> {
    const version = this.version;
    if (this.path === undefined || version <= this.writtenVersion) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ version, resolve, reject });
      if (this.timer !== undefined) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      if (this.writing === undefined) void this.writeNow();
      // else: the write in progress settles, then schedules the next one for the newer changes.
    });
  }

  /** close writes pending changes; later changes stay in memory only. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }
}
