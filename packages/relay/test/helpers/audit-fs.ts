/**
 * A controllable file layer for the audit trail: the real file system, but every fsync /
 * fdatasync can be held (until released) or made to fail with EIO, so relay tests can observe
 * what happens before a record is durable and when the trail fails.
 */
import { nodeAuditFs, type AuditFileHandle, type AuditFs } from '@switchboard/audit';

export class ControlledAuditFs implements AuditFs {
  readonly rename = nodeAuditFs.rename;
  readonly readdir = nodeAuditFs.readdir;
  readonly syncDir = nodeAuditFs.syncDir;
  /** syncs counts completed syncs; held counts syncs waiting for release(). */
  syncs = 0;
  held = 0;
  private gate: Promise<void> | undefined;
  private open_: (() => void) | undefined;
  private failure: NodeJS.ErrnoException | undefined;

  /** hold makes every later sync wait until {@link release}. */
  hold(): void {
    if (this.gate) return;
    this.gate = new Promise((resolve) => (this.open_ = resolve));
  }

  /** release lets held (and later) syncs go on. */
  release(): void {
    this.open_?.();
    this.gate = undefined;
    this.open_ = undefined;
  }

  /** full makes every write fail as on a full disk (ENOSPC from write(2)) while it is true. */
  full = false;

  private checkSpace(): void {
    if (this.full) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write', errno: -28 });
  }

  /** fail makes every sync (held ones included) reject with EIO from now on. */
  fail(): void {
    this.failure = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    this.release();
  }

  private async beforeSync(): Promise<void> {
    if (this.gate) {
      this.held++;
      try {
        await this.gate;
      } finally {
        this.held--;
      }
    }
    if (this.failure) throw this.failure;
  }

  async open(path: string, flags: string, mode?: number): Promise<AuditFileHandle> {
    const fh = await nodeAuditFs.open(path, flags, mode);
    return {
      write: async (b, o, l, p) => {
        this.checkSpace();
        return fh.write(b, o, l, p);
      },
      writeSync: (b, o, l) => {
        this.checkSpace();
        return (fh.writeSync as NonNullable<AuditFileHandle['writeSync']>).call(fh, b, o, l);
      },
      read: (b, o, l, p) => fh.read(b, o, l, p),
      stat: () => fh.stat(),
      truncate: (n) => fh.truncate(n),
      close: () => fh.close(),
      sync: async () => {
        await this.beforeSync();
        await fh.sync();
        this.syncs++;
      },
      datasync: async () => {
        await this.beforeSync();
        await fh.datasync();
        this.syncs++;
      },
    };
  }
}
