import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { nodeAuditFs, type AuditFileHandle, type AuditFs, type AuditRequest } from '../src/index.js';

const dirs: string[] = [];

/** tempDir makes a directory removed after the test. */
export async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sb-audit-'));
  dirs.push(d);
  return d;
}

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** request makes a request record numbered `i`. */
export function request(i: number, over: Partial<AuditRequest> = {}): AuditRequest {
  return {
    type: 'request',
    sessionId: `link-1/${i % 4}`,
    server: i % 2 === 0 ? 'crm' : 'tickets',
    agent: `spiffe://example.org/agent/a${i % 3}`,
    direction: 'agent-to-server',
    requestId: String(i),
    method: 'tools/call',
    name: i % 5 === 0 ? 'delete_all' : 'lookup_customer',
    decision: i % 5 === 0 ? 'deny' : 'allow',
    ruleId: i % 5 === 0 ? null : 'support-reads-crm',
    reason: i % 5 === 0 ? 'no rule allows delete_all' : 'allowed by support-reads-crm',
    argsDigest: 'a'.repeat(64),
    ...over,
  };
}

/** FsProbe wraps the real file system: counts syncs, tracks which seqs are synced, and can fail. */
export class FsProbe implements AuditFs {
  readonly open: AuditFs['open'] = (path, flags, mode) => this.openFile(path, flags, mode);
  syncs = 0;
  datasyncs = 0;
  writes = 0;
  /** synced holds every seq whose line was written before a completed sync of its file. */
  readonly synced = new Set<number>();
  /** failOn makes the n-th (1-based) call of an operation reject with EIO. */
  failOn: { op: 'write' | 'sync' | 'datasync'; n: number } | undefined;
  /** gate, when set, holds every sync until it resolves. */
  gate: Promise<void> | undefined;
  private counts = { write: 0, sync: 0, datasync: 0 };
  private readonly handles = new Set<AuditFileHandle>();

  /** crash closes every file the trail holds, as the death of its process would, without a final write. */
  async crash(): Promise<void> {
    for (const fh of [...this.handles]) await fh.close().catch(() => undefined);
    this.handles.clear();
  }

  openFile(path: string, flags: string, mode?: number): Promise<AuditFileHandle> {
    return nodeAuditFs.open(path, flags, mode).then((fh) => this.wrap(fh));
  }
  rename(from: string, to: string): Promise<void> {
    return nodeAuditFs.rename(from, to);
  }
  readdir(dir: string): Promise<string[]> {
    return nodeAuditFs.readdir(dir);
  }
  syncDir(dir: string): Promise<void> {
    return nodeAuditFs.syncDir(dir);
  }

  private check(op: 'write' | 'sync' | 'datasync'): void {
    this.counts[op]++;
    if (this.failOn?.op === op && this.counts[op] >= this.failOn.n) {
      throw Object.assign(new Error(`EIO: injected ${op} failure`), { code: 'EIO' });
    }
  }

  private wrap(fh: AuditFileHandle): AuditFileHandle {
    let written: number[] = [];
    const probe = this;
    const syncThen = async (op: 'sync' | 'datasync'): Promise<void> => {
      const pending = written;
      written = [];
      if (probe.gate) await probe.gate;
      probe.check(op);
      await (op === 'sync' ? fh.sync() : fh.datasync());
      if (op === 'sync') probe.syncs++;
      else probe.datasyncs++;
      for (const s of pending) probe.synced.add(s);
    };
    probe.handles.add(fh);
    return {
      async write(buffer, offset, length, position) {
        probe.check('write');
        probe.writes++;
        const r = await fh.write(buffer, offset, length, position);
        for (const m of Buffer.from(buffer.subarray(offset, offset + r.bytesWritten)).toString('utf8').matchAll(/"seq":(\d+)/g)) written.push(Number(m[1]));
        return r;
      },
      writeSync(buffer, offset, length) {
        probe.check('write');
        probe.writes++;
        const n = (fh.writeSync as NonNullable<AuditFileHandle['writeSync']>).call(fh, buffer, offset, length);
        for (const m of Buffer.from(buffer.subarray(offset, offset + n)).toString('utf8').matchAll(/"seq":(\d+)/g)) written.push(Number(m[1]));
        return n;
      },
      read: (b, o, l, p) => fh.read(b, o, l, p),
      sync: () => syncThen('sync'),
      datasync: () => syncThen('datasync'),
      stat: () => fh.stat(),
      truncate: (n) => fh.truncate(n),
      close: () => {
        probe.handles.delete(fh);
        return fh.close();
      },
    };
  }
}

/** deferred returns a promise and its resolver. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
