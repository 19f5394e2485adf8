import { AuditUnavailableError, type AuditRecordInput } from '@switchboard/audit';

import type { RelayAuditDurability } from '../config/audit-config.js';

/**
 * LazyAuditRecord is a record, or a function that builds it: a sink may call the function after
 * `write` returned (once, in order with the other records), so work such as digesting arguments
 * stays off the message path.
 */
export type LazyAuditRecord = AuditRecordInput | (() => AuditRecordInput);

/** buildRecord returns the record a {@link LazyAuditRecord} stands for. */
export function buildRecord(r: LazyAuditRecord): AuditRecordInput {
  return typeof r === 'function' ? r() : r;
}

/**
 * AuditSink is where the relay's audit records go: {@link TrailAuditSink} (the tamper-evident trail
 * of `@switchboard/audit`) in production, {@link MemoryAuditSink} in tests.
 *
 * The relay calls `write` for records nothing waits on (session open/close, responses, links,
 * refusals) and `append` for a request record that gates forwarding: in `strict` mode the request
 * is forwarded only after the promise resolved. When the sink cannot record (`available` false, or
 * `append` rejects with `AUDIT_ERR_UNAVAILABLE`) the relay fails closed: every recorded call is
 * refused with -32050 and nothing is forwarded.
 */
export interface AuditSink {
  /** durability says whether the relay must wait for `append` before forwarding (`strict`). */
  readonly durability: RelayAuditDurability;
  /** available is false once the sink cannot record; it does not come back without a restart. */
  readonly available: boolean;
  /**
   * append records one record and resolves once it is stored as `durability` promises (fsynced in
   * `strict`). Rejects with {@link AuditUnavailableError} when it never will be.
   */
  append(record: AuditRecordInput): Promise<unknown>;
  /** write records one record without waiting (it may be built later); a failure shows in `available`. */
  write(record: LazyAuditRecord): void;
  /** flush resolves once every record written so far is stored. */
  flush(): Promise<void>;
  /** close flushes and releases the sink (the trail writes its final checkpoint); later records are refused. */
  close(): Promise<void>;
}

/**
 * MemoryAuditSink keeps records in memory, for tests and embedding. Set `available` to false to
 * simulate a failed trail: `append` then rejects with `AUDIT_ERR_UNAVAILABLE` and `write` drops.
 */
export class MemoryAuditSink implements AuditSink {
  /** records holds every record written or appended, oldest first. */
  readonly records: AuditRecordInput[] = [];
  readonly durability: RelayAuditDurability;
  /** available can be set to false to simulate a broken audit trail. */
  available = true;
  private closed = false;

  /** Creates a sink; `durability` defaults to `batched` (append resolves at once). */
  constructor(options: { durability?: RelayAuditDurability } = {}) {
    this.durability = options.durability ?? 'batched';
  }

  append(record: AuditRecordInput): Promise<unknown> {
    if (this.closed || !this.available) {
      return Promise.reject(new AuditUnavailableError(this.closed ? 'closed' : 'failed', 'audit: the memory sink is unavailable'));
    }
    this.records.push(record);
    return Promise.resolve();
  }

  write(record: LazyAuditRecord): void {
    if (!this.closed && this.available) this.records.push(buildRecord(record));
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
  }
}
