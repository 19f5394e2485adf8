import { performance } from 'node:perf_hooks';
import type { AuditRecordInput } from '@switchboard/audit';
import { buildRecord, type AuditSink, type LazyAuditRecord } from '../audit/sink.js';

/**
 * The relay's live view for the console and `switchboard status`: it reads the audit records as
 * the sink builds them (so what the console shows is what the trail says, digests only) and keeps
 * the live sessions, a bounded ring of recent events and a few counters. Nothing here decides
 * anything; it only watches.
 */

/** LiveSession is one open agent session as the console shows it. */
export interface LiveSession {
  readonly sessionId: string;
  readonly server: string;
  readonly agent: string;
  readonly connector: string;
  /** since is when the session opened (or resumed here), ISO 8601. */
  readonly since: string;
  /** calls counts the agent's requests the relay allowed; denials those it refused. */
  calls: number;
  denials: number;
  lastActivity: string;
}

/** ConsoleEvent is one event of the live stream: an audit record, its `args` left out, plus `id` and `time`. */
export type ConsoleEvent = Readonly<Record<string, unknown>> & { readonly id: number; readonly time: string; readonly type: string };

/** EventListener receives each event as it is recorded. */
export type EventListener = (event: ConsoleEvent) => void;

/** RECENT_EVENTS bounds the events kept for a page that connects later (and for `status`). */
export const RECENT_EVENTS = 500;

/** ObservatoryCounts are counters since the relay started. */
export interface ObservatoryCounts {
  allowed: number;
  denied: number;
  rateLimited: number;
  egressDenied: number;
  drifts: number;
}

/**
 * Observatory watches the audit records and keeps what the console shows. `tap(sink)` returns a
 * sink that hands each record to the observatory once it is built, then to `sink` unchanged.
 */
export class Observatory {
  private readonly live = new Map<string, Live>();
  /** ring is a circular buffer of the last {@link RECENT_EVENTS} events, kept unbuilt until read. */
  private readonly ring: (Slot | undefined)[] = new Array<Slot | undefined>(RECENT_EVENTS);
  private ringStart = 0;
  private ringSize = 0;
  private readonly listeners = new Set<EventListener>();
  private nextId = 1;
  readonly counts: ObservatoryCounts = { allowed: 0, denied: 0, rateLimited: 0, egressDenied: 0, drifts: 0 };
  private readonly now: () => number;
  private readonly onRecord: ((r: Readonly<Record<string, unknown>>) => void) | undefined;
  private readonly onAppended: ((seconds: number) => void) | undefined;

  /**
   * `now` gives milliseconds since the epoch (default `Date.now`); `onRecord` hears every record
   * too (the relay's metrics count decisions and time calls from them); `onAppended` hears how long
   * each gating append took to be stored.
   */
  constructor(options: { now?: () => number; onRecord?: (r: Readonly<Record<string, unknown>>) => void; onAppended?: (seconds: number) => void } = {}) {
    this.now = options.now ?? Date.now;
    this.onRecord = options.onRecord;
    this.onAppended = options.onAppended;
  }

  /** sessions lists the open sessions, oldest first. */
  sessions(): LiveSession[] {
    const out: LiveSession[] = [];
    for (const s of this.live.values()) {
      out.push({ sessionId: s.sessionId, server: s.server, agent: s.agent, connector: s.connector, since: iso(s.since), calls: s.calls, denials: s.denials, lastActivity: iso(s.lastActivity) });
    }
    return out;
  }

  /** recent returns the last `n` events (at most {@link RECENT_EVENTS}), oldest first; `after` skips those up to that id. */
  recent(n = RECENT_EVENTS, after = 0): ConsoleEvent[] {
    const out: ConsoleEvent[] = [];
    for (let i = 0; i < this.ringSize; i++) {
      const slot = this.ring[(this.ringStart + i) % RECENT_EVENTS] as Slot;
      if (slot.id > after) out.push(eventOf(slot));
    }
    return out.slice(Math.max(0, out.length - n));
  }

  /** subscribe calls `listener` for every later event; the returned function unsubscribes. */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** subscribers is the number of live listeners (console pages with the stream open). */
  get subscribers(): number {
    return this.listeners.size;
  }

  /** tap wraps `sink`: every record written or appended reaches the observatory once it is built. */
  tap(sink: AuditSink): AuditSink {
    const observe = (r: AuditRecordInput): void => this.record(r);
    return {
      get durability() {
        return sink.durability;
      },
      get available() {
        return sink.available;
      },
      append: (record: AuditRecordInput): Promise<unknown> => {
        observe(record);
        const appended = this.onAppended;
        if (appended === undefined) return sink.append(record);
        const t0 = performance.now();
        return sink.append(record).then((r) => {
          appended((performance.now() - t0) / 1000);
          return r;
        });
      },
      write(record: LazyAuditRecord): void {
        if (typeof record === 'function') {
          // Built when the sink builds it (off the message path), observed then.
          sink.write(() => {
            const r = buildRecord(record);
            observe(r);
            return r;
          });
        } else {
          observe(record);
          sink.write(record);
        }
      },
      flush: () => sink.flush(),
      close: () => sink.close(),
      inner: sink,
    } as AuditSink & { inner: AuditSink };
  }

  /** record takes one audit record into the view. */
  record(r: AuditRecordInput): void {
    const rec = r as unknown as Record<string, unknown>;
    this.onRecord?.(rec);
    const type = rec.type as string;
    switch (type) {
      case 'response':
        // Responses are in the trail; the stream shows decisions, not every answer.
        return;
      case 'request': {
        const sessionId = rec.sessionId;
        const s = typeof sessionId === 'string' ? this.live.get(sessionId) : undefined;
        const agentSide = rec.direction === 'agent-to-server';
        if (rec.decision === 'deny') {
          this.counts.denied++;
          if (typeof rec.reason === 'string' && rec.reason.startsWith('rate limit')) this.counts.rateLimited++;
          if (s !== undefined && agentSide) s.denials++;
        } else {
          this.counts.allowed++;
          if (s !== undefined && agentSide) s.calls++;
        }
        const time = this.now();
        if (s !== undefined) s.lastActivity = time;
        // Allowed requests other than calls are routine (list, ping): the stream carries decisions that matter.
        if (rec.decision === 'allow' && rec.method !== 'tools/call') return;
        this.emit(type, rec, time);
        return;
      }
      case 'session.open':
      case 'session.resume': {
        const time = this.now();
        const sessionId = rec.sessionId;
        if (typeof sessionId === 'string') {
          this.live.set(sessionId, { sessionId, server: String(rec.server), agent: String(rec.agent), connector: String(rec.connector), since: time, calls: 0, denials: 0, lastActivity: time });
        }
        this.emit(type, rec, time);
        return;
      }
      case 'session.close':
        if (typeof rec.sessionId === 'string') this.live.delete(rec.sessionId);
        break;
      case 'egress.denied':
        this.counts.egressDenied++;
        break;
      case 'pin.drift':
        this.counts.drifts++;
        break;
      default:
        break;
    }
    this.emit(type, rec, this.now());
  }

  private emit(type: string, rec: Record<string, unknown>, time: number): void {
    // The event itself is built only when someone reads it: a page on the stream now, or later
    // from the ring. The ring keeps the record without its arguments (never shown, maybe large).
    const slot: Slot = { id: this.nextId++, time, type, rec: 'args' in rec ? withoutArgs(rec) : rec, event: undefined };
    const at = (this.ringStart + this.ringSize) % RECENT_EVENTS;
    this.ring[at] = slot;
    if (this.ringSize < RECENT_EVENTS) this.ringSize++;
    else this.ringStart = (this.ringStart + 1) % RECENT_EVENTS;
    if (this.listeners.size === 0) return;
    const event = eventOf(slot);
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // A listener's failure (a closed stream) is its own; the others still hear.
      }
    }
  }
}

/** Live is a live session as kept: times in epoch milliseconds, made ISO 8601 when shown. */
interface Live {
  readonly sessionId: string;
  readonly server: string;
  readonly agent: string;
  readonly connector: string;
  readonly since: number;
  calls: number;
  denials: number;
  lastActivity: number;
}

/** Slot is one event in the ring: the record (without `args`), its id and time; `event` once built. */
interface Slot {
  readonly id: number;
  readonly time: number;
  readonly type: string;
  readonly rec: Record<string, unknown>;
  event: ConsoleEvent | undefined;
}

function eventOf(slot: Slot): ConsoleEvent {
  if (slot.event !== undefined) return slot.event;
  const { args: _args, ...shown } = slot.rec;
  slot.event = Object.freeze({ ...shown, id: slot.id, time: iso(slot.time), type: slot.type }) as ConsoleEvent;
  return slot.event;
}

function withoutArgs(rec: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in rec) if (k !== 'args') out[k] = rec[k];
  return out;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
