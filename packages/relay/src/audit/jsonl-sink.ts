import { open, type FileHandle } from 'node:fs/promises';
import { RelayError } from '../errors.js';
import type { AuditRecord } from './records.js';
import type { AuditSink } from './sink.js';

/** MAX_AUDIT_BACKLOG_BYTES bounds what the JSON Lines sink holds in memory before it reports unavailable. */
export const MAX_AUDIT_BACKLOG_BYTES = 32 * 1024 * 1024;

/**
 * JsonlAuditSink appends one JSON object per line to a file (mode 0600). Records written in one
 * event-loop turn are joined and written with one call; writes never overlap. A write error makes
 * the sink unavailable for good (the relay then fails closed) and is reported to `onError`.
 *
 * @example
 * const sink = await JsonlAuditSink.open('./audit.log');
 * sink.write({ type: 'policy.reload', time: new Date().toISOString(), ok: true, source: null, error: null });
 * await sink.close();
 */
export class JsonlAuditSink implements AuditSink {
  private readonly file: FileHandle;
  private pending: string[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> | undefined;
  private scheduled = false;
  private failed: Error | undefined;
  private closed = false;
  private readonly onError: ((err: Error) => void) | undefined;

  private constructor(file: FileHandle, onError?: (err: Error) => void) {
    this.file = file;
    this.onError = onError;
  }

  /** JsonlAuditSink.open opens (creating, mode 0600) `path` for appending. */
  static async open(path: string, options: { onError?: (err: Error) => void } = {}): Promise<JsonlAuditSink> {
    try {
      return new JsonlAuditSink(await open(path, 'a', 0o600), options.onError);
    } catch (err) {
      throw new RelayError('RELAY_ERR_AUDIT', `audit: cannot open ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  }

  get available(): boolean {
    return this.failed === undefined && !this.closed && this.pendingBytes < MAX_AUDIT_BACKLOG_BYTES;
  }

  write(record: AuditRecord): void {
    if (this.closed || this.failed) return;
    const line = `${JSON.stringify(record)}\n`;
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (!this.scheduled && this.writing === undefined) {
      this.scheduled = true;
      setImmediate(drain, this);
    }
  }

  /** @internal */
  drainNow(): void {
    this.scheduled = false;
    if (this.writing !== undefined || this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    const bytes = this.pendingBytes;
    this.writing = this.file.appendFile(chunk, 'utf8').then(
      () => {
        this.pendingBytes -= bytes;
        this.writing = undefined;
        if (this.pending.length > 0) this.drainNow();
      },
      (err: Error) => {
        this.writing = undefined;
        this.failed = err;
        this.pending = [];
        this.onError?.(err);
      },
    );
  }

  async flush(): Promise<void> {
    while (this.writing !== undefined || this.pending.length > 0) {
      if (this.writing === undefined) this.drainNow();
      await this.writing;
    }
    if (this.failed) throw new RelayError('RELAY_ERR_AUDIT', `audit: write failed: ${this.failed.message}`, { cause: this.failed });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      await this.file.close();
    }
  }
}

function drain(sink: JsonlAuditSink): void {
  sink.drainNow();
}
