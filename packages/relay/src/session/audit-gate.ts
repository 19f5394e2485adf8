/**
 * AuditGate keeps one session's agent→server messages in order while some of them wait for their
 * audit record to be durable (`audit.durability: strict`). A gated message leaves only after its
 * record's `append()` resolved; every message sent after it — gated or not — waits behind it, so a
 * session's messages are never reordered. Other sessions have their own gate and keep moving.
 *
 * When a record can never be stored (the trail failed), its message is not forwarded: `refused` is
 * called with the message's token (the relay answers -32050) and the messages behind it go on.
 *
 * What waits is bounded: above `holdAboveBytes` the agent's socket is paused (`hold(true)`) until
 * the queue drains; above `maxBytes` the session is ended with `onOverflow`.
 */

const READY = 0;
const PENDING = 1;
const REFUSED = 2;

interface Entry<K> {
  readonly data: Buffer;
  readonly token: K | undefined;
  state: number;
}

/** AuditGateInit wires a gate to its session. */
export interface AuditGateInit<K> {
  /** send forwards one message (to the session's flow control). */
  send(data: Buffer): void;
  /** hold pauses (true) or resumes (false) reading from the agent. */
  hold(on: boolean): void;
  /** refused is called, in order, for a gated message whose record could not be stored. */
  refused(token: K): void;
  /** onOverflow ends the session when more than `maxBytes` wait. */
  onOverflow(): void;
  holdAboveBytes: number;
  maxBytes: number;
}

/** AuditGate is a per-session ordered holding queue in front of flow control; see the file comment. */
export class AuditGate<K> {
  private readonly init: AuditGateInit<K>;
  private queue: Entry<K>[] = [];
  private head = 0;
  private bytes = 0;
  private holding = false;
  private done = false;

  constructor(init: AuditGateInit<K>) {
    this.init = init;
  }

  /** waiting is the number of messages held back. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** send forwards `data` now, or behind the messages already waiting. */
  send(data: Buffer): void {
    if (this.done) return;
    if (this.head === this.queue.length) {
      this.init.send(data);
      return;
    }
    this.push({ data, token: undefined, state: READY });
  }

  /** sendAfter forwards `data` once `stored` resolves (and everything before it left); refuses it if `stored` rejects. */
  sendAfter(data: Buffer, stored: Promise<unknown>, token: K): void {
    if (this.done) return;
    const e: Entry<K> = { data, token, state: PENDING };
    this.push(e);
    stored.then(
      () => this.settle(e, READY),
      () => this.settle(e, REFUSED),
    );
  }

  /** end drops whatever waits (the session is over); nothing is sent or refused afterwards. */
  end(): void {
    this.done = true;
    this.queue = [];
    this.head = 0;
    this.bytes = 0;
  }

  private push(e: Entry<K>): void {
    this.queue.push(e);
    this.bytes += e.data.length;
    if (this.bytes > this.init.maxBytes) {
      this.init.onOverflow();
      return;
    }
    if (!this.holding && this.bytes >= this.init.holdAboveBytes) {
      this.holding = true;
      this.init.hold(true);
    }
  }

  private settle(e: Entry<K>, state: number): void {
    if (this.done) return;
    e.state = state;
    const q = this.queue;
    while (this.head < q.length) {
      const first = q[this.head] as Entry<K>;
      if (first.state === PENDING) break;
      q[this.head++] = undefined as unknown as Entry<K>;
      this.bytes -= first.data.length;
      if (first.state === READY) this.init.send(first.data);
      else this.init.refused(first.token as K);
      if (this.done) return;
    }
    if (this.head === q.length) {
      this.queue = [];
      this.head = 0;
    }
    if (this.holding && this.bytes < this.init.holdAboveBytes) {
      this.holding = false;
      this.init.hold(false);
    }
  }
}
