import { performance } from 'node:perf_hooks';

/**
 * TURN_BUDGET is how many messages one session handles in one direction per event-loop callback
 * (or turn of its backlog) while other sessions on the relay have messages too (docs/protocol.md,
 * "Flow control": fairness).
 */
export const TURN_BUDGET = 4;

/**
 * ALONE_BUDGET is the budget of a session no other session has contended with for
 * {@link CONTENDED_MS}: nobody waits behind it, so its burst goes on in larger turns (fewer trips
 * round the event loop, fewer and larger writes). The first message of another session waits for
 * at most one such turn; from then on every session of the relay takes {@link TURN_BUDGET}.
 */
export const ALONE_BUDGET = 64;

/** CONTENDED_MS is how long a session takes small turns after another session last had a message. */
export const CONTENDED_MS = 50;

// recent is the latest arrival on the relay (its group and time) and the latest of any other
// group before it: for every group, "when did another session last have a message" in O(1).
const recent: { group: TurnGroup | undefined; at: number; otherAt: number } = { group: undefined, at: -Infinity, otherAt: -Infinity };

/**
 * TurnGroup is what the turn queues of one session (both directions) share: the budget of their
 * turns, small while another session has had messages within {@link CONTENDED_MS}.
 */
export class TurnGroup {
  /** budget is the number of messages a turn (or a callback) may handle now. */
  budget(now = performance.now()): number {
    const othersAt = recent.group === this ? recent.otherAt : recent.at;
    return now - othersAt < CONTENDED_MS ? TURN_BUDGET : ALONE_BUDGET;
  }

  /** @internal arrive notes a message of this group's session (every push, both directions) and returns the budget. */
  arrive(): number {
    const now = performance.now();
    const budget = this.budget(now);
    if (recent.group !== this) {
      recent.otherAt = recent.at;
      recent.group = this;
    }
    recent.at = now;
    return budget;
  }
}

/**
 * TurnQueue gives one session's messages (one direction) at most {@link TURN_BUDGET} handlings
 * per event-loop callback while other sessions have messages too ({@link ALONE_BUDGET} while
 * none has had any for {@link CONTENDED_MS}; its {@link TurnGroup} tells). A socket read can carry
 * hundreds of small messages, and a window of credit thousands; handled in one go they hold every
 * other session on the relay for the whole burst. Past the budget, messages wait here in order and
 * go on in the next turn (setImmediate), after the I/O of the other sessions has run.
 *
 * The queue holds what has already been read. With `hold`, the caller stops reading while more
 * than `hold.aboveBytes` wait (`hold.on(true)`) and reads again once they are handled
 * (`hold.on(false)`), so it holds at most that plus one read's worth; pausing for every small
 * backlog would cost a pause and a resume per turn. Without `hold` the sender's credit bounds it
 * (the link side: credit returns only once a message is handled). `flush()` handles everything
 * queued at once — for a close that must come after what was received before it.
 */
export class TurnQueue<T> {
  private readonly handle: (m: T) => void;
  private readonly hold: TurnHold<T> | undefined;
  private readonly group: TurnGroup;
  private held = false;
  private queuedBytes = 0;
  private used = 0;
  private scheduled = false;
  private queue: T[] = [];
  private head = 0;
  private ended = false;

  constructor(handle: (m: T) => void, hold?: TurnHold<T>, group: TurnGroup = new TurnGroup()) {
    this.handle = handle;
    this.hold = hold;
    this.group = group;
  }

  /** waiting is how many messages wait for a later turn. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** push handles `m` now, within this turn's budget and behind nothing; otherwise queues it. */
  push(m: T): void {
    if (this.ended) return;
    const budget = this.group.arrive();
    if (this.head === this.queue.length) {
      if (this.used < budget) {
        // The budget is per callback of the event loop (one socket read, say): it is given back
        // once this one has returned. A nextTick, not an immediate: a session that never goes past
        // its budget costs no extra trip round the loop.
        if (this.used++ === 0) process.nextTick(giveBack, this);
        this.handle(m);
        return;
      }
    }
    this.queue.push(m);
    this.queued(this.hold === undefined ? 0 : this.hold.bytes(m));
  }

  /** prepend puts `items` ahead of everything queued (messages held back and released in order). */
  prepend(items: readonly T[]): void {
    if (this.ended || items.length === 0) return;
    this.queue = [...items, ...this.queue.slice(this.head)];
    this.head = 0;
    let bytes = 0;
    if (this.hold !== undefined) for (const m of items) bytes += this.hold.bytes(m);
    this.queued(bytes);
  }

  /** queued counts `bytes` just queued, holds the producer past the mark, and asks for a turn. */
  private queued(bytes: number): void {
    const h = this.hold;
    if (h !== undefined) {
      this.queuedBytes += bytes;
      if (!this.held && this.queuedBytes > h.aboveBytes) {
        this.held = true;
        h.on(true);
      }
    }
    this.schedule();
  }

  /** flush handles everything queued now, ignoring the budget. */
  flush(): void {
    while (!this.ended && this.head < this.queue.length) this.next();
    this.settle();
  }

  /** end drops what is queued; nothing is handled afterwards. */
  end(): void {
    this.ended = true;
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
  }

  private next(): void {
    const q = this.queue;
    const m = q[this.head] as T;
    q[this.head++] = undefined as T;
    if (this.hold !== undefined) this.queuedBytes -= this.hold.bytes(m);
    this.handle(m);
  }

  private settle(): void {
    if (this.ended || this.head < this.queue.length) return;
    if (this.head > 0) {
      this.queue = [];
      this.head = 0;
      this.queuedBytes = 0;
      if (this.held) {
        this.held = false;
        this.hold?.on(false);
      }
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(nextTurn<T>, this);
  }

  /** @internal a new turn: a fresh budget for what waits. */
  turn(): void {
    this.scheduled = false;
    const budget = this.group.budget();
    for (let n = 0; n < budget && !this.ended && this.head < this.queue.length; n++) this.next();
    this.settle();
    // What still waits gets the next turn; a message read after this one starts a budget afresh.
    this.used = 0;
    if (!this.ended && this.head < this.queue.length) this.schedule();
  }

  /** @internal the callback that used the budget has returned. */
  giveBack(): void {
    this.used = 0;
  }
}

function nextTurn<T>(q: TurnQueue<T>): void {
  q.turn();
}

function giveBack<T>(q: TurnQueue<T>): void {
  q.giveBack();
}

/** TurnHold tells a {@link TurnQueue} when its producer should stop: above `aboveBytes` waiting (`bytes` sizes one message). */
export interface TurnHold<T> {
  readonly aboveBytes: number;
  bytes(m: T): number;
  on(held: boolean): void;
}
