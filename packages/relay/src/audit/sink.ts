import type { AuditRecord } from './records.js';

/**
 * AuditSink receives audit records. `write` is called on the hot path and must not block: sinks
 * buffer and write in the background. When a sink cannot record (`available` is false), the relay
 * fails closed: tools/call requests are refused with -32050 and nothing is forwarded.
 */
export interface AuditSink {
  /** write queues one record. */
  write(record: AuditRecord): void;
  /** flush resolves once every record written so far is stored. */
  flush(): Promise<void>;
  /** close flushes and releases the sink; later writes are dropped. */
  close(): Promise<void>;
  /** available is false while the sink cannot record (write error, backlog over its bound). */
  readonly available: boolean;
}

/** MemoryAuditSink keeps records in memory; for tests and embedding. */
export class MemoryAuditSink implements AuditSink {
  /** records holds every record written, oldest first. */
  readonly records: AuditRecord[] = [];
  /** available can be set to false to simulate a broken audit trail. */
  available = true;
  private closed = false;

  write(record: AuditRecord): void {
    if (!this.closed) this.records.push(record);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
  }
}
