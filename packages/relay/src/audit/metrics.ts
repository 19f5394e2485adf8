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
  });
}

/** renderAuditMetrics writes the audit gauges and counters in the Prometheus text format. */
export function renderAuditMetrics(a: AuditMetricsSnapshot): string[] {
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
  };
  metric('switchboard_relay_audit_available', 'gauge', 'Whether the audit trail can record (0: it failed, every recorded call is refused with -32050).', a.available ? 1 : 0);
  metric('switchboard_relay_audit_records_total', 'counter', 'Audit records appended since start (checkpoints excluded).', a.records);
  metric('switchboard_relay_audit_checkpoints_total', 'counter', 'Signed audit checkpoints written since start.', a.checkpoints);
  metric('switchboard_relay_audit_syncs_total', 'counter', 'fsync/fdatasync calls on the audit trail since start (group commit: one per batch).', a.syncs);
  metric('switchboard_relay_audit_rotations_total', 'counter', 'Audit trail file rotations since start.', a.rotations);
  metric('switchboard_relay_audit_last_seq', 'gauge', 'Seq of the last audit record appended.', a.lastSeq);
  metric('switchboard_relay_audit_durable_seq', 'gauge', 'Seq of the last audit record known to be on disk.', a.durableSeq);
  metric('switchboard_relay_audit_pending_bytes', 'gauge', 'Audit records appended but not yet on disk, in bytes.', a.pendingBytes);
  return out;
}
