import type { AuditUnavailableError } from './errors.js';
import { nodeAuditFs, type AuditFs } from './fs-layer.js';
import type { AuditSigningKey } from './keys.js';

/**
 * AuditDurability says when `append` resolves: `strict` once the record is fsynced (group
 * commit), `batched` at once with a write + fdatasync within `flushIntervalMs`, `off` at once
 * with no sync (the OS writes it back when it likes).
 */
export type AuditDurability = 'strict' | 'batched' | 'off';

/** AuditTrailOptions configure {@link AuditTrail.open}. */
export interface AuditTrailOptions {
  /** path is the live trail file; rotated files and the side file sit next to it. */
  path: string;
  /** durability defaults to `strict`. */
  durability?: AuditDurability;
  /** signingKey signs checkpoints; without it no checkpoints are written. */
  signingKey?: AuditSigningKey;
  /** checkpointEvery: a checkpoint after this many records (default 1000) or seconds (default 60), whichever first. */
  checkpointEvery?: { records?: number; seconds?: number };
  /** rotate starts a new file once the live one holds `maxBytes` or its first record is `maxAgeSeconds` old. */
  rotate?: { maxBytes?: number; maxAgeSeconds?: number };
  /** flushIntervalMs bounds how long a `batched` record waits before its write (default 5). */
  flushIntervalMs?: number;
  /** maxPendingBytes bounds records appended but not yet durable; beyond it `append` waits (default 8 MiB). */
  maxPendingBytes?: number;
  /** onFailure is called once when the trail enters the failed state. */
  onFailure?: (err: AuditUnavailableError) => void;
  /**
   * onBatch is called after each batch is stored: how many records and bytes, how long the
   * write(2) took and how long the fsync/fdatasync (null in `off` mode, which does not sync).
   */
  onBatch?: (batch: AuditBatchTiming) => void;
  /** now is the clock (for record times, checkpoint intervals and age rotation). */
  now?: () => Date;
  /** fs is the file system layer; tests inject one to count syncs or to fail. */
  fs?: AuditFs;
}

/** AuditAppendResult is where a record landed in the chain. */
export interface AuditAppendResult {
  seq: number;
  hash: string;
}

/** AuditHealth is the trail's state, for `/readyz` and for failing closed. */
export interface AuditHealth {
  /** ok is false once the trail failed or closed: appends reject with `AUDIT_ERR_UNAVAILABLE`. */
  ok: boolean;
  state: 'open' | 'failed' | 'closed';
  durability: AuditDurability;
  /** lastSeq is the seq of the last record appended (durable or not). */
  lastSeq: number;
  /** durableSeq is the last seq known written and synced (written, for `off`). */
  durableSeq: number;
  pendingBytes: number;
  /** waiting counts appends held back because the pending buffer is full. */
  waiting: number;
  error?: string;
  /** lastCheckpoint is the last checkpoint signed since open: the seq it covers and when. */
  lastCheckpoint?: { coversSeq: number; time: string };
}

/** AuditBatchTiming is one stored batch, as {@link AuditTrailOptions.onBatch} hears it. */
export interface AuditBatchTiming {
  records: number;
  bytes: number;
  writeSeconds: number;
  syncSeconds: number | null;
}

/** AuditStats are counters since open. */
export interface AuditStats {
  records: number;
  checkpoints: number;
  batches: number;
  syncs: number;
  rotations: number;
}

/** @internal TRAIL_DEFAULTS are the documented defaults. */
export const TRAIL_DEFAULTS = Object.freeze({ records: 1000, seconds: 60, flushIntervalMs: 5, maxPendingBytes: 8 * 1024 * 1024 });

/** @internal ValidTrailOptions are options with defaults filled in. */
export type ValidTrailOptions = Required<Pick<AuditTrailOptions, 'path' | 'durability' | 'now' | 'fs'>> & AuditTrailOptions;

/** @internal validateTrailOptions checks options once, at open (a bad value is a TypeError). */
export function validateTrailOptions(o: AuditTrailOptions): ValidTrailOptions {
  if (o === null || typeof o !== 'object') throw new TypeError('audit: options are required');
  if (typeof o.path !== 'string' || o.path === '') throw new TypeError('audit: `path` must be a non-empty string');
  const durability = o.durability ?? 'strict';
  if (durability !== 'strict' && durability !== 'batched' && durability !== 'off') {
    throw new TypeError(`audit: \`durability\` must be strict, batched or off, got ${JSON.stringify(durability)}`);
  }
  positive(o.checkpointEvery?.records, 'checkpointEvery.records', true);
  positive(o.checkpointEvery?.seconds, 'checkpointEvery.seconds');
  positive(o.rotate?.maxBytes, 'rotate.maxBytes', true);
  positive(o.rotate?.maxAgeSeconds, 'rotate.maxAgeSeconds');
  positive(o.flushIntervalMs, 'flushIntervalMs');
  positive(o.maxPendingBytes, 'maxPendingBytes', true);
  return { ...o, durability, now: o.now ?? (() => new Date()), fs: o.fs ?? nodeAuditFs };
}

function positive(v: number | undefined, name: string, integer = false): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new TypeError(`audit: \`${name}\` must be a positive ${integer ? 'integer' : 'number'}`);
  }
}
