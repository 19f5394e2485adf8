import type { AuditSink } from './sink.js';
import { TrailAuditSink } from './trail-sink.js';

/** AuditMetricsSnapshot is the audit trail's state as `/metrics` and `relay.metrics()` report it. */
export interface AuditMetricsSnapshot {
  /** available is false once the trail failed: every recorded call is refused (-32050). */
  available: boolean;
  durability: string;
  /** records, checkpoints, syncs and rotations count since the relay started (0 for a non-trail sink). */
  records: number;
  checkpoints: number;
  syncs: number;
  rotations: number;
  /** lastSeq is the seq of the last record appended; durableSeq the last one on disk. */
  lastSeq: number;
  durableSeq: number;
  /** pendingBytes are records appended but not yet on disk. */
  pendingBytes: number;
  /** queued counts records the relay holds back (strict: at most a few ms) before appending them. */
  queued: number;
  /** lastCheckpoint is the last signed checkpoint since start (the seq it covers, when), or null. */
  lastCheckpoint: { coversSeq: number; time: string } | null;
}

/** auditMetricsOf returns a function reading `sink`'s state for the metrics endpoints. */
export function auditMetricsOf(sink: AuditSink): () => AuditMetricsSnapshot {
  if (sink instanceof TrailAuditSink) {
    return () => {
      const h = sink.health();
      const s = sink.stats();
      return {
        available: sink.available,
        durability: sink.durability,
        records: s.records,
        checkpoints: s.checkpoints,
        syncs: s.syncs,
        rotations: s.rotations,
        lastSeq: h.lastSeq,
        durableSeq: h.durableSeq,
        pendingBytes: h.pendingBytes,
        queued: sink.queued,
        lastCheckpoint: h.lastCheckpoint ?? null,
      };
    };
  }
  return () => ({
    available: sink.available,
    durability: sink.durability,
    records: 0,
    checkpoints: 0,
    syncs: 0,
    rotations: 0,
    lastSeq: 0,
    durableSeq: 0,
    pendingBytes: 0,
    queued: 0,
    lastCheckpoint: null,
  });
}

/** AuditMetric is one audit gauge or counter of `/metrics`, read from the trail's state. */
export interface AuditMetric {
  readonly name: string;
  readonly type: 'counter' | 'gauge';
  readonly help: string;
  read(a: AuditMetricsSnapshot): number;
}

/** AUDIT_METRICS are the audit trail's gauges and counters on `/metrics`. */
export const AUDIT_METRICS: readonly AuditMetric[] = Object.freeze([
  { name: 'switchboard_relay_audit_available', type: 'gauge', help: 'Whether the audit trail can record (0: it failed, every recorded call is refused with -32050).', read: (a) => (a.available ? 1 : 0) },
  { name: 'switchboard_relay_audit_records_total', type: 'counter', help: 'Audit records appended since start (checkpoints excluded).', read: (a) => a.records },
  { name: 'switchboard_relay_audit_checkpoints_total', type: 'counter', help: 'Signed audit checkpoints written since start.', read: (a) => a.checkpoints },
  { name: 'switchboard_relay_audit_syncs_total', type: 'counter', help: 'fsync/fdatasync calls on the audit trail since start (group commit: one per batch).', read: (a) => a.syncs },
  { name: 'switchboard_relay_audit_rotations_total', type: 'counter', help: 'Audit trail file rotations since start.', read: (a) => a.rotations },
  { name: 'switchboard_relay_audit_last_seq', type: 'gauge', help: 'Seq of the last audit record appended.', read: (a) => a.lastSeq },
  { name: 'switchboard_relay_audit_durable_seq', type: 'gauge', help: 'Seq of the last audit record known to be on disk.', read: (a) => a.durableSeq },
  { name: 'switchboard_relay_audit_pending_bytes', type: 'gauge', help: 'Audit records appended but not yet on disk, in bytes.', read: (a) => a.pendingBytes },
] satisfies AuditMetric[]);
