import { performance } from 'node:perf_hooks';
import { dirname } from 'node:path';
import { assertAppendable, encodeChained } from './chain.js';
import { AuditError, AuditUnavailableError } from './errors.js';
import { checkpointFileName, rotatedFileName } from './files.js';
import type { AuditFileHandle, AuditFs } from './fs-layer.js';
import { resume, sideLine, type AuditRecovery } from './internal/resume.js';
import type { AuditSigningKey } from './keys.js';
import type { AuditCheckpoint, AuditRecordInput } from './records.js';
import {
  TRAIL_DEFAULTS,
  validateTrailOptions,
  type AuditAppendResult,
  type AuditDurability,
  type AuditHealth,
  type AuditStats,
  type AuditBatchTiming,
  type AuditTrailOptions,
  type ValidTrailOptions,
} from './trail-options.js';

export type { AuditAppendResult, AuditBatchTiming, AuditDurability, AuditHealth, AuditStats, AuditTrailOptions };

interface Item {
  data: string;
  bytes: number;
  seq: number;
  hash: string;
  resolve?: ((r: AuditAppendResult) => void) | undefined;
  reject?: ((err: Error) => void) | undefined;
  side?: string | undefined;
}
interface RotateMarker {
  rotate: true;
  firstSeq: number;
  lastSeq: number;
}
interface Waiter {
  record: AuditRecordInput;
  resolve: (r: AuditAppendResult) => void;
  reject: (err: Error) => void;
}

/**
 * AuditTrail appends records to a tamper-evident trail: each line carries `seq`, `time`, `prev`
 * (the previous record's hash) and `hash`, so the files form one SHA-256 chain across restarts
 * and rotations; Ed25519 checkpoints sign it at intervals. In `strict` mode `append` resolves only
 * once the record is fsynced; records appended while an fsync is in flight go to disk together in
 * the next one (group commit). A failed write or fsync fails the trail for good: every pending and
 * later append rejects with {@link AuditUnavailableError}, and `health().ok` is false.
 *
 * @example
 * const trail = await AuditTrail.open({ path: './audit.log', signingKey: await loadAuditSigningKey('./pki/audit_key.pem') });
 * const { seq } = await trail.append({ type: 'policy.reload', accepted: true, file: 'policy.yaml', fileHash, error: null });
 * await trail.close(); // final checkpoint, flush
 */
export class AuditTrail {
  /** path is the live trail file. */
  readonly path: string;
  /** durability is the mode the trail runs in. */
  readonly durability: AuditDurability;
  /** recovery is set when opening repaired a torn write left by a crash. */
  readonly recovery: AuditRecovery | undefined;

  private readonly fs: AuditFs;
  private readonly key: AuditSigningKey | undefined;
  private readonly cpRecords: number;
  private readonly cpMs: number;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;
  private readonly flushMs: number;
  private readonly maxPending: number;
  private readonly now: () => Date;
  private readonly onFailure: ((err: AuditUnavailableError) => void) | undefined;
  private readonly onBatch: ((batch: AuditBatchTiming) => void) | undefined;
  /** lastCheckpoint is the last checkpoint this trail signed since open. */
  private lastCheckpoint: { coversSeq: number; time: string } | undefined;
  private fh: AuditFileHandle;
  private sideFh: AuditFileHandle | undefined;

  private lastSeq: number;
  private lastHash: string;
  private durableSeq: number;
  private sinceCheckpoint: number;
  private lastCheckpointMs: number;
  private fileFirstSeq: number;
  private fileBytes: number;
  private fileStartMs: number | undefined;

  private queue: (Item | RotateMarker)[] = [];
  private pendingBytes = 0;
  private readonly waiters: Waiter[] = [];
  private running: Promise<void> | undefined;
  private scheduled: NodeJS.Immediate | NodeJS.Timeout | undefined;
  // The ISO 8601 `time` of the last record, cached for records in the same millisecond.
  private isoMs = NaN;
  private iso = '';
  private unsynced = false;
  private failure: AuditUnavailableError | undefined;
  private closing = false;
  private closingPromise: Promise<void> | undefined;
  private closed = false;
  private readonly ticker: NodeJS.Timeout;
  private readonly counters: AuditStats = { records: 0, checkpoints: 0, batches: 0, syncs: 0, rotations: 0 };

  private constructor(o: ValidTrailOptions, fh: AuditFileHandle, s: Awaited<ReturnType<typeof resume>>) {
    this.path = o.path;
    this.durability = o.durability;
    this.fs = o.fs;
    this.key = o.signingKey;
    this.cpRecords = o.checkpointEvery?.records ?? TRAIL_DEFAULTS.records;
    this.cpMs = (o.checkpointEvery?.seconds ?? TRAIL_DEFAULTS.seconds) * 1000;
    this.maxBytes = o.rotate?.maxBytes ?? Infinity;
    this.maxAgeMs = (o.rotate?.maxAgeSeconds ?? Infinity) * 1000;
    this.flushMs = o.flushIntervalMs ?? TRAIL_DEFAULTS.flushIntervalMs;
    this.maxPending = o.maxPendingBytes ?? TRAIL_DEFAULTS.maxPendingBytes;
    this.now = o.now;
    this.onFailure = o.onFailure;
    this.onBatch = o.onBatch;
    this.fh = fh;
    this.recovery = s.recovery;
    this.lastSeq = s.lastSeq;
    this.lastHash = s.lastHash;
    this.durableSeq = s.lastSeq;
    // Records a previous run left after its last checkpoint are signed by the next one.
    this.sinceCheckpoint = s.lastIsCheckpoint || s.lastSeq === 0 ? 0 : 1;
    this.lastCheckpointMs = o.now().getTime();
    this.fileFirstSeq = s.fileFirstSeq;
    this.fileBytes = s.fileBytes;
    this.fileStartMs = s.fileRecords ? s.fileStartMs : undefined;
    const tickMs = Math.max(10, Math.min(1000, this.cpMs, this.maxAgeMs));
    this.ticker = setInterval(tick, tickMs, this);
    this.ticker.unref();
  }

  /**
   * AuditTrail.open opens (creating, mode 0600) the trail at `options.path` and continues its
   * chain: `seq` and `prev` from the tail of the live file, or of the newest rotated file when the
   * live one is empty or missing. A torn final line (no newline: a crash mid-write) is saved to
   * `<path>.torn-…` and cut off, and reported in `recovery`; a corrupt last record throws
   * `AUDIT_ERR_CORRUPT_TAIL`, as does a trail that ends before its last signed checkpoint.
   */
  static async open(options: AuditTrailOptions): Promise<AuditTrail> {
    const o = validateTrailOptions(options);
    let fh: AuditFileHandle;
    try {
      fh = await o.fs.open(o.path, 'a+', 0o600);
    } catch (err) {
      throw new AuditError('AUDIT_ERR_FILE', `audit: cannot open ${o.path}: ${errCode(err)}`, { cause: err });
    }
    try {
      const state = await resume(o.fs, o.path, fh, o.now().getTime());
      return new AuditTrail(o, fh, state);
    } catch (err) {
      await fh.close().catch(() => undefined);
      if (err instanceof AuditError) throw err;
      throw new AuditError('AUDIT_ERR_FILE', `audit: cannot read ${o.path}: ${errCode(err)}`, { cause: err });
    }
  }

  /**
   * append adds one record to the chain and resolves with its `seq` and `hash`: in `strict` mode
   * once it is fsynced, otherwise at once. When the pending buffer is full it waits (never drops).
   * Rejects with {@link AuditUnavailableError} when the trail failed or is closed, and with
   * `TypeError` for a record that is not appendable (unknown `type`, chain fields set, values
   * canonical JSON cannot hold).
   */
  append(record: AuditRecordInput): Promise<AuditAppendResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(closedError(this.path));
    try {
      assertAppendable(record);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (this.waiters.length > 0 || this.pendingBytes >= this.maxPending) {
      return new Promise((resolve, reject) => this.waiters.push({ record, resolve, reject }));
    }
    return this.admit(record);
  }

  /**
   * writeSoon starts writing what is queued in the next turn of the event loop, instead of after
   * `flushIntervalMs` in `batched` mode (for a caller that already held its records for a while).
   */
  writeSoon(): void {
    if (this.running || this.queue.length === 0 || this.failure) return;
    if (this.scheduled !== undefined && this.durability !== 'batched') return;
    if (this.scheduled !== undefined) {
      clearTimeout(this.scheduled as NodeJS.Timeout);
      clearImmediate(this.scheduled as NodeJS.Immediate);
    }
    this.scheduled = setImmediate(kickFrom, this);
  }

  /** checkpoint writes a signed checkpoint now (if a key is set and anything is unsigned) and resolves once it is durable. */
  async checkpoint(): Promise<AuditAppendResult | undefined> {
    if (this.failure) throw this.failure;
    if (this.closing) throw closedError(this.path);
    const r = this.addCheckpoint(this.now().getTime());
    await this.flush();
    return r;
  }

  /** flush resolves once every record appended so far is written and synced, whatever the durability mode. */
  async flush(): Promise<void> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.running) {
        await this.running.catch(() => undefined);
        continue;
      }
      if (this.queue.length > 0) {
        this.kick();
        continue;
      }
      if (this.waiters.length > 0) {
        // Waiters are admitted as space frees; with an empty queue there is space now.
        this.admitWaiters();
        continue;
      }
      break;
    }
    if (this.unsynced && !this.closed) {
      try {
        await this.fh.sync();
        this.counters.syncs++;
        this.unsynced = false;
      } catch (err) {
        this.fail(err);
        throw this.failure as unknown as Error;
      }
    }
  }

  /** close writes a final checkpoint (when a key is set), flushes and closes the files. Appends made before it are recorded. */
  close(): Promise<void> {
    this.closingPromise ??= this.doClose();
    return this.closingPromise;
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    clearInterval(this.ticker);
    try {
      if (!this.failure) {
        await this.flush();
        this.addCheckpoint(this.now().getTime());
        await this.flush();
      }
    } finally {
      this.closed = true;
      await this.fh.close().catch(() => undefined);
      await this.sideFh?.close().catch(() => undefined);
    }
    if (this.failure) throw this.failure;
  }

  /** health reports whether the trail can record; a relay in `strict` mode refuses calls while `ok` is false. */
  health(): AuditHealth {
    const h: AuditHealth = {
      ok: !this.failure && !this.closing,
      state: this.failure ? 'failed' : this.closing ? 'closed' : 'open',
      durability: this.durability,
      lastSeq: this.lastSeq,
      durableSeq: this.durableSeq,
      pendingBytes: this.pendingBytes,
      waiting: this.waiters.length,
    };
    if (this.failure) h.error = this.failure.message;
    if (this.lastCheckpoint !== undefined) h.lastCheckpoint = { ...this.lastCheckpoint };
    return h;
  }

  /** stats returns counters since open (records, checkpoints, write batches, syncs, rotations). */
  stats(): AuditStats {
    return { ...this.counters };
  }

  // ---- chain assignment (synchronous: the order of append calls is the order of the chain)

  private admit(record: AuditRecordInput): Promise<AuditAppendResult> {
    const nowMs = this.now().getTime();
    if (this.fileStartMs !== undefined && nowMs - this.fileStartMs >= this.maxAgeMs) this.cutFile(nowMs);
    if (this.sinceCheckpoint > 0 && nowMs - this.lastCheckpointMs >= this.cpMs) this.addCheckpoint(nowMs);
    let item: Item;
    try {
      item = this.enqueue(record as unknown as Record<string, unknown>, nowMs);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    this.counters.records++;
    this.sinceCheckpoint++;
    const result = { seq: item.seq, hash: item.hash };
    const p =
      this.durability === 'strict'
        ? new Promise<AuditAppendResult>((resolve, reject) => {
            item.resolve = resolve;
            item.reject = reject;
          })
        : Promise.resolve(result);
    if (this.sinceCheckpoint >= this.cpRecords) this.addCheckpoint(nowMs);
    if (this.fileBytes >= this.maxBytes) this.cutFile(nowMs);
    this.schedule();
    return p;
  }

  private enqueue(fields: Record<string, unknown>, nowMs: number): Item {
    const seq = this.lastSeq + 1;
    if (nowMs !== this.isoMs) {
      this.isoMs = nowMs;
      this.iso = new Date(nowMs).toISOString();
    }
    const { line, hash } = encodeChained(fields, seq, this.iso, this.lastHash);
    const data = `${line}\n`;
    const bytes = Buffer.byteLength(data);
    this.lastSeq = seq;
    this.lastHash = hash;
    this.fileBytes += bytes;
    this.fileStartMs ??= nowMs;
    this.pendingBytes += bytes;
    const item: Item = { data, bytes, seq, hash };
    this.queue.push(item);
    return item;
  }

  private addCheckpoint(nowMs: number): AuditAppendResult | undefined {
    if (this.key === undefined || this.sinceCheckpoint === 0 || this.failure) return undefined;
    const body: AuditCheckpoint = {
      type: 'checkpoint',
      coversSeq: this.lastSeq,
      coversHash: this.lastHash,
      keyId: this.key.keyId,
      sig: this.key.sign(this.lastSeq, this.lastHash),
    };
    const item = this.enqueue(body as unknown as Record<string, unknown>, nowMs);
    item.side = sideLine({ ...body, time: new Date(nowMs).toISOString() });
    this.counters.checkpoints++;
    this.sinceCheckpoint = 0;
    this.lastCheckpointMs = nowMs;
    this.lastCheckpoint = { coversSeq: body.coversSeq, time: new Date(nowMs).toISOString() };
    this.schedule();
    return { seq: item.seq, hash: item.hash };
  }

  private cutFile(nowMs: number): void {
    if (this.fileStartMs === undefined || this.failure) return;
    // Each rotated file ends with a signed checkpoint, so it can be checked on its own.
    this.addCheckpoint(nowMs);
    this.queue.push({ rotate: true, firstSeq: this.fileFirstSeq, lastSeq: this.lastSeq });
    this.fileFirstSeq = this.lastSeq + 1;
    this.fileBytes = 0;
    this.fileStartMs = undefined;
    this.schedule();
  }

  /** @internal tickNow runs the timer's work: time-based checkpoints and age rotation. */
  tickNow(): void {
    if (this.failure || this.closing) return;
    const nowMs = this.now().getTime();
    if (this.fileStartMs !== undefined && nowMs - this.fileStartMs >= this.maxAgeMs) this.cutFile(nowMs);
    if (this.sinceCheckpoint > 0 && nowMs - this.lastCheckpointMs >= this.cpMs) this.addCheckpoint(nowMs);
  }

  // ---- the writer: one batch at a time; whatever queued meanwhile is the next batch

  private schedule(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = this.durability === 'batched' ? setTimeout(kickFrom, this.flushMs, this) : setImmediate(kickFrom, this);
  }

  /** @internal onScheduled runs when the scheduled flush (timer or immediate) fires. */
  onScheduled(): void {
    this.scheduled = undefined;
    this.kick();
  }

  private kick(): void {
    if (this.scheduled) {
      clearTimeout(this.scheduled as NodeJS.Timeout);
      clearImmediate(this.scheduled as NodeJS.Immediate);
      this.scheduled = undefined;
    }
    if (this.running || this.queue.length === 0 || this.failure) return;
    this.running = this.run().finally(() => {
      this.running = undefined;
      if (this.queue.length > 0 && !this.failure) this.schedule();
    });
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0 && !this.failure) {
      const head = this.queue[0] as Item | RotateMarker;
      if ('rotate' in head) {
        this.queue.shift();
        await this.guard(() => this.rotateFile(head));
        continue;
      }
      let n = 0;
      while (n < this.queue.length && !('rotate' in (this.queue[n] as Item | RotateMarker))) n++;
      const batch = this.queue.splice(0, n) as Item[];
      await this.guard(() => this.writeBatch(batch));
      if (this.failure) {
        for (const it of batch) it.reject?.(this.failure);
        return;
      }
      this.pendingBytes -= batch.reduce((a, it) => a + it.bytes, 0);
      const lastItem = batch[batch.length - 1] as Item;
      this.durableSeq = lastItem.seq;
      for (const it of batch) it.resolve?.({ seq: it.seq, hash: it.hash });
      const sides = batch.filter((it) => it.side !== undefined).map((it) => it.side as string);
      if (sides.length > 0) await this.guard(() => this.writeSide(sides.join('')));
      this.admitWaiters();
    }
  }

  private async writeBatch(batch: Item[]): Promise<void> {
    const buf = Buffer.from(batch.length === 1 ? (batch[0] as Item).data : batch.map((it) => it.data).join(''), 'utf8');
    const t0 = performance.now();
    await writeAll(this.fh, buf);
    const t1 = performance.now();
    this.counters.batches++;
    if (this.durability === 'strict') {
      await this.fh.sync();
      this.counters.syncs++;
    } else if (this.durability === 'batched') {
      await this.fh.datasync();
      this.counters.syncs++;
    } else {
      this.unsynced = true;
    }
    this.onBatch?.({ records: batch.length, bytes: buf.length, writeSeconds: (t1 - t0) / 1000, syncSeconds: this.durability === 'off' ? null : (performance.now() - t1) / 1000 });
  }

  private async writeSide(data: string): Promise<void> {
    // The side file must never get ahead of the chain on disk, even in `off` mode.
    if (this.unsynced) {
      await this.fh.sync();
      this.counters.syncs++;
      this.unsynced = false;
    }
    this.sideFh ??= await this.fs.open(checkpointFileName(this.path), 'a', 0o600);
    await writeAll(this.sideFh, Buffer.from(data, 'utf8'));
    if (this.durability !== 'off') await this.sideFh.sync();
  }

  private async rotateFile(m: RotateMarker): Promise<void> {
    const target = rotatedFileName(this.path, m.firstSeq, m.lastSeq);
    if (this.unsynced) {
      await this.fh.sync();
      this.unsynced = false;
    }
    const exists = await this.fs.open(target, 'r').then(
      async (h) => {
        await h.close();
        return true;
      },
      () => false,
    );
    if (exists) throw new Error(`rotation target ${target} exists`);
    await this.fh.close();
    await this.fs.rename(this.path, target);
    this.fh = await this.fs.open(this.path, 'a+', 0o600);
    await this.fs.syncDir(dirname(this.path));
    this.counters.rotations++;
  }

  private async guard(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = new AuditUnavailableError('failed', `audit: cannot record to ${this.path}: ${errCode(err)}; the trail is unavailable until reopened`, { cause: err });
    clearInterval(this.ticker);
    const queued = this.queue;
    this.queue = [];
    for (const q of queued) if (!('rotate' in q)) q.reject?.(this.failure);
    for (const w of this.waiters.splice(0)) w.reject(this.failure);
    this.onFailure?.(this.failure);
  }

  private admitWaiters(): void {
    while (this.waiters.length > 0 && this.pendingBytes < this.maxPending && !this.failure) {
      const w = this.waiters.shift() as Waiter;
      this.admit(w.record).then(w.resolve, w.reject);
    }
  }
}

function kickFrom(t: AuditTrail): void {
  t.onScheduled();
}

function tick(t: AuditTrail): void {
  t.tickNow();
}

async function writeAll(fh: AuditFileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  if (fh.writeSync !== undefined) {
    while (off < buf.length) {
      const n = fh.writeSync(buf, off, buf.length - off);
      if (n <= 0) throw new Error('write made no progress');
      off += n;
    }
    return;
  }
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, null);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    off += bytesWritten;
  }
}

function closedError(path: string): AuditUnavailableError {
  return new AuditUnavailableError('closed', `audit: the trail ${path} is closed`);
}

function errCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ?? e?.message ?? String(err);
}
