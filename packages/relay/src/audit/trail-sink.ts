import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { existsSync } from 'node:fs';
import {
  AuditTrail,
  checkpointFileName,
  isAuditError,
  listTrailFiles,
  verifyAuditTrail,
  type AuditPublicKey,
  type AuditVerifyResult,
  type AuditBatchTiming,
  type AuditFs,
  type AuditHealth,
  type AuditRecordInput,
  type AuditRecovery,
  type AuditSigningKey,
  type AuditStats,
  type AuditUnavailableError,
} from '@switchboard/audit';
import { RelayError } from '../errors.js';
import type { RelayAuditDurability } from '../config/audit-config.js';
import { buildRecord, type AuditSink, type LazyAuditRecord } from './sink.js';

/** TrailAuditSinkOptions configure {@link TrailAuditSink.open}; see docs/audit.md. */
export interface TrailAuditSinkOptions {
  /** path is the live trail file (rotated files and `<path>.checkpoints` sit next to it). */
  path: string;
  /** durability defaults to `strict`. */
  durability?: RelayAuditDurability;
  /** signingKey signs checkpoints; without it `audit verify` cannot detect a truncated tail. */
  signingKey?: AuditSigningKey;
  checkpointEvery?: { records?: number; seconds?: number };
  rotate?: { maxBytes?: number; maxAgeSeconds?: number };
  /** fs is the trail's file layer (tests inject one to delay or fail fsync). */
  fs?: AuditFs;
  /** onFailure is called once when the trail fails (a write or fsync error): the relay fails closed from then on. */
  onFailure?: (err: AuditUnavailableError) => void;
  /** onBatch hears each stored batch's write and sync times (the relay's histograms). */
  onBatch?: (batch: AuditBatchTiming) => void;
  /** onRefused is called when a record is refused as not appendable (a bug: it is logged, never silently lost). */
  onRefused?: (err: Error, type: string) => void;
  /**
   * onRecovered is called when a trail that failed for want of space (a write refused with
   * ENOSPC or EDQUOT) was reopened once space returned: recorded calls are accepted again.
   */
  onRecovered?: () => void;
  /** recoverEveryMs is how often a trail that ran out of space tries to reopen (default 1000). */
  recoverEveryMs?: number;
  /** freeBytes reports the space left for the trail's directory (default: statfs). */
  freeBytes?: (dir: string) => Promise<number>;
}

/** RECOVER_MIN_FREE_BYTES is the free space a trail that ran out of it waits for before it reopens (1 MiB: thousands of records). */
export const RECOVER_MIN_FREE_BYTES = 1024 * 1024;

async function statfsFreeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * outOfSpace reports whether a trail failure is a write(2) the file system refused for want of
 * space: nothing of that batch reached the page cache, so reopening the trail once space returns
 * (which re-checks its tail and cuts a torn line) loses nothing acknowledged. Any other failure —
 * an fsync error above all, after which Linux may have dropped dirty pages — stays final.
 */
export function outOfSpace(err: AuditUnavailableError): boolean {
  const cause = err.cause as NodeJS.ErrnoException | undefined;
  return (cause?.code === 'ENOSPC' || cause?.code === 'EDQUOT') && cause.syscall === 'write';
}

/**
 * LAZY_WRITE_MS bounds how long a record nothing waits on stays with the sink before it is
 * appended (it goes earlier with the next `append`). Its `time` is when it was chained.
 */
export const LAZY_WRITE_MS = 5;
const LAZY_MAX = 256;

// Lone UTF-16 surrogates cannot be stored (I-JSON); peers can send them as JSON escapes in names
// and reasons. They are replaced by U+FFFD before a record reaches the trail.
const SURROGATE = /[\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function wellFormed(s: string): string {
  return SURROGATE.test(s) ? s.replace(LONE_SURROGATE, '\uFFFD') : s;
}

/**
 * wellFormedRecord returns `record`, or a copy whose strings (top level and in string lists) have
 * lone surrogates replaced, so a name a peer chose can never make its record unstorable.
 */
export function wellFormedRecord(record: AuditRecordInput): AuditRecordInput {
  let out: Record<string, unknown> | undefined;
  const r = record as unknown as Record<string, unknown>;
  for (const k in r) {
    const v = r[k];
    let fixed: unknown = v;
    if (typeof v === 'string') {
      const w = wellFormed(v);
      if (w !== v) fixed = w;
    } else if (Array.isArray(v) && v.some((x) => typeof x === 'string' && SURROGATE.test(x))) {
      fixed = v.map((x: unknown) => (typeof x === 'string' ? wellFormed(x) : x));
    }
    if (fixed !== v) {
      out ??= { ...r };
      out[k] = fixed;
    }
  }
  return (out ?? r) as unknown as AuditRecordInput;
}

/**
 * TrailAuditSink is the relay's {@link AuditSink} over an {@link AuditTrail}: a SHA-256 hash chain
 * in JSON Lines, Ed25519 checkpoints, group-committed fsync in `strict` mode, rotation. A write or
 * fsync failure fails it for good (`available` false): the relay then refuses every recorded call.
 *
 * A record written with `write` (nothing waits on it: responses, session and link events,
 * denials) is held for at most {@link LAZY_WRITE_MS}, then built, chained and written with the
 * others held meanwhile, in order (sooner when an `append` comes, which takes them along). So
 * hashing, canonical JSON and argument digests never delay a forward, a busy relay writes one
 * batch per few milliseconds instead of one per message, and in `strict` mode a call costs one
 * fsync (its request record, with the previous call's response riding along) instead of two.
 *
 * @example
 * const sink = await TrailAuditSink.open({ path: './audit.log', durability: 'strict', signingKey });
 * await sink.append({ type: 'policy.reload', accepted: true, file: 'policy.yaml', fileHash, error: null });
 * await sink.close(); // final checkpoint
 */
export class TrailAuditSink implements AuditSink {
  /** trail is the underlying trail (health, stats, recovery); a new one after a recovery from a full disk. */
  trail: AuditTrail;
  readonly durability: RelayAuditDurability;
  private failed = false;
  private closed = false;
  private readonly onRefused: ((err: Error, type: string) => void) | undefined;
  private readonly refusedWrite: (err: unknown) => void;
  private lazy: LazyAuditRecord[] = [];
  private lazyTimer: NodeJS.Timeout | undefined;
  private reopen: (() => Promise<AuditTrail>) | undefined;
  private recoverTimer: NodeJS.Timeout | undefined;
  private readonly onRecovered: (() => void) | undefined;
  private readonly recoverEveryMs: number;
  private readonly freeBytes: (dir: string) => Promise<number>;
  private readonly dir: string;
  /** path is the live trail file. */
  readonly path: string;
  /** publicKey verifies the checkpoints this sink signs, when it signs them. */
  readonly publicKey: AuditPublicKey | undefined;
  /** recoveries counts the times the trail was reopened after running out of space. */
  recoveries = 0;

  private constructor(trail: AuditTrail, durability: RelayAuditDurability, options: TrailAuditSinkOptions) {
    this.trail = trail;
    this.durability = durability;
    this.onRefused = options.onRefused;
    this.onRecovered = options.onRecovered;
    this.recoverEveryMs = options.recoverEveryMs ?? 1000;
    this.freeBytes = options.freeBytes ?? statfsFreeBytes;
    this.dir = dirname(options.path);
    this.path = options.path;
    this.publicKey = options.signingKey?.publicKey;
    // One handler for every fire-and-forget write: an unavailable trail is already reported by
    // onFailure; anything else is a record the trail refused, which must not vanish silently.
    this.refusedWrite = (err: unknown) => {
      if (!isAuditError(err, 'AUDIT_ERR_UNAVAILABLE')) this.onRefused?.(err as Error, 'write');
    };
  }

  /**
   * TrailAuditSink.open opens (or creates, mode 0600) the trail and continues its chain. Throws
   * `RELAY_ERR_AUDIT` when the trail cannot be opened — notably `AUDIT_ERR_CORRUPT_TAIL`, when its
   * last record does not check out or it ends before its last signed checkpoint: the relay does not
   * start on a damaged chain.
   */
  static async open(options: TrailAuditSinkOptions): Promise<TrailAuditSink> {
    const durability = options.durability ?? 'strict';
    let sink: TrailAuditSink | undefined;
    let trail: AuditTrail;
    const openTrail = (): Promise<AuditTrail> =>
      AuditTrail.open({
        path: options.path,
        durability,
        ...(options.signingKey ? { signingKey: options.signingKey } : {}),
        ...(options.checkpointEvery ? { checkpointEvery: options.checkpointEvery } : {}),
        ...(options.rotate ? { rotate: options.rotate } : {}),
        ...(options.fs ? { fs: options.fs } : {}),
        ...(options.onBatch ? { onBatch: options.onBatch } : {}),
        onFailure: (err) => {
          if (sink) sink.failed = true;
          options.onFailure?.(err);
          if (sink && outOfSpace(err)) sink.scheduleRecovery();
        },
      });
    try {
      trail = await openTrail();
    } catch (err) {
      if (isAuditError(err, 'AUDIT_ERR_CORRUPT_TAIL')) {
        throw new RelayError(
          'RELAY_ERR_AUDIT',
          `audit: refusing to start: the trail ${options.path} is damaged (AUDIT_ERR_CORRUPT_TAIL: ${err.message}). ` +
            `Nothing was changed. Inspect it with \`switchboard audit verify ${options.path} --key audit_pub.pem\`; ` +
            'keep the files as evidence and point audit.path at a new file to start a new trail',
          { cause: err },
        );
      }
      const detail = isAuditError(err) ? `${err.code}: ${err.message}` : String(err);
      throw new RelayError('RELAY_ERR_AUDIT', `audit: cannot open the trail ${options.path}: ${detail}`, { cause: err });
    }
    sink = new TrailAuditSink(trail, durability, options);
    sink.reopen = openTrail;
    return sink;
  }

  /** scheduleRecovery tries, every `recoverEveryMs`, to reopen a trail that ran out of space. */
  private scheduleRecovery(): void {
    if (this.closed || this.recoverTimer !== undefined) return;
    this.recoverTimer = setTimeout(() => void this.recover(), this.recoverEveryMs);
    this.recoverTimer.unref();
  }

  private async recover(): Promise<void> {
    this.recoverTimer = undefined;
    if (this.closed || !this.failed || this.reopen === undefined) return;
    // Reopen only once there is room for a full batch of pending records again: an open alone
    // writes nothing, so it would "succeed" on a disk that is still full.
    const free = await this.freeBytes(this.dir).catch(() => 0);
    if (free < RECOVER_MIN_FREE_BYTES) {
      this.scheduleRecovery();
      return;
    }
    // The failed trail's files are closed (nothing more is written through it), then reopened:
    // the open re-reads the tail, cuts a line torn by the short write, and continues the chain.
    await this.trail.close().catch(() => undefined);
    let next: AuditTrail;
    try {
      next = await this.reopen();
    } catch {
      this.scheduleRecovery();
      return;
    }
    if (this.closed) {
      await next.close().catch(() => undefined);
      return;
    }
    this.trail = next;
    this.failed = false;
    this.recoveries++;
    this.onRecovered?.();
  }

  get available(): boolean {
    return !this.failed && !this.closed;
  }

  /** recovery reports a torn final line cut off at open (a crash mid-write), if there was one. */
  get recovery(): AuditRecovery | undefined {
    return this.trail.recovery;
  }

  /** queued is the number of records held back (strict mode) before they reach the trail. */
  get queued(): number {
    return this.lazy.length;
  }

  append(record: AuditRecordInput): Promise<unknown> {
    if (this.lazy.length > 0) this.drain();
    return this.trail.append(wellFormedRecord(record));
  }

  write(record: LazyAuditRecord): void {
    if (this.closed) {
      this.appendHeld(record);
      return;
    }
    this.lazy.push(record);
    if (this.lazy.length >= LAZY_MAX) this.drain();
    else this.lazyTimer ??= setTimeout(drainLazy, LAZY_WRITE_MS, this);
  }

  /** @internal drain appends the records held back, in order, and has the trail write them now. */
  drain(): void {
    if (this.lazyTimer !== undefined) clearTimeout(this.lazyTimer);
    this.lazyTimer = undefined;
    const held = this.lazy;
    if (held.length === 0) return;
    this.lazy = [];
    for (const r of held) this.appendHeld(r);
    // They waited already: `batched` must not add its flush interval on top.
    this.trail.writeSoon();
  }

  private appendHeld(r: LazyAuditRecord): void {
    let record: AuditRecordInput;
    try {
      record = wellFormedRecord(buildRecord(r));
    } catch (err) {
      this.onRefused?.(err as Error, 'write');
      return;
    }
    this.trail.append(record).then(undefined, this.refusedWrite);
  }

  flush(): Promise<void> {
    this.drain();
    return this.trail.flush();
  }

  /** health is the trail's state (for /readyz and the audit gauges). */
  health(): AuditHealth {
    return this.trail.health();
  }

  /**
   * verify flushes what was written so far and checks the whole trail on disk — every file, the
   * side file, every checkpoint signature — as `switchboard audit verify` does.
   */
  async verify(): Promise<AuditVerifyResult> {
    await this.flush().catch(() => undefined);
    const files = await listTrailFiles(this.path);
    const side = checkpointFileName(this.path);
    return verifyAuditTrail(files.length > 0 ? files : [this.path], {
      ...(existsSync(side) ? { checkpoints: side } : {}),
      ...(this.publicKey ? { publicKey: this.publicKey } : {}),
      partial: false,
    });
  }

  /** stats are the trail's counters since open. */
  stats(): AuditStats {
    return this.trail.stats();
  }

  close(): Promise<void> {
    this.drain();
    this.closed = true;
    if (this.recoverTimer !== undefined) clearTimeout(this.recoverTimer);
    return this.trail.close();
  }
}

function drainLazy(sink: TrailAuditSink): void {
  sink.drain();
}
