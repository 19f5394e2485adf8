import { writeSync } from 'node:fs';
import { open as fsOpen, readdir, rename, type FileHandle } from 'node:fs/promises';

/**
 * AuditFileHandle is the part of Node's `FileHandle` the trail uses. Tests inject a wrapper to
 * count fsyncs or to make a write fail.
 */
export interface AuditFileHandle {
  write(buffer: Uint8Array, offset: number, length: number, position: number | null): Promise<{ bytesWritten: number }>;
  /**
   * writeSync, when present, appends on the calling thread and returns the bytes written. The trail
   * uses it for its batches: an append to the page cache costs a few µs, less than the thread-pool
   * round trip of `write`. fsync and fdatasync stay asynchronous.
   */
  writeSync?(buffer: Uint8Array, offset: number, length: number): number;
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  /** sync is fsync(2). */
  sync(): Promise<void>;
  /** datasync is fdatasync(2). */
  datasync(): Promise<void>;
  stat(): Promise<{ size: number }>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

/** AuditFs is the file system the trail writes through; {@link nodeAuditFs} is the real one. */
export interface AuditFs {
  open(path: string, flags: string, mode?: number): Promise<AuditFileHandle>;
  rename(from: string, to: string): Promise<void>;
  readdir(dir: string): Promise<string[]>;
  /** syncDir fsyncs a directory, so a rename or a new file in it survives a crash. */
  syncDir(dir: string): Promise<void>;
}

/** NodeAuditFile is {@link AuditFileHandle} over a `node:fs/promises` FileHandle, with `writeSync`. */
class NodeAuditFile implements AuditFileHandle {
  private readonly fh: FileHandle;
  constructor(fh: FileHandle) {
    this.fh = fh;
  }
  write(buffer: Uint8Array, offset: number, length: number, position: number | null): Promise<{ bytesWritten: number }> {
    return this.fh.write(buffer, offset, length, position);
  }
  writeSync(buffer: Uint8Array, offset: number, length: number): number {
    return writeSync(this.fh.fd, buffer, offset, length, null);
  }
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return this.fh.read(buffer, offset, length, position);
  }
  sync(): Promise<void> {
    return this.fh.sync();
  }
  datasync(): Promise<void> {
    return this.fh.datasync();
  }
  stat(): Promise<{ size: number }> {
    return this.fh.stat();
  }
  truncate(length: number): Promise<void> {
    return this.fh.truncate(length);
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

/** nodeAuditFs is {@link AuditFs} over `node:fs`: files are {@link AuditFileHandle}s with `writeSync`. */
export const nodeAuditFs: AuditFs = Object.freeze({
  open: async (path: string, flags: string, mode?: number): Promise<AuditFileHandle> => new NodeAuditFile(await fsOpen(path, flags, mode)),
  rename,
  readdir: (dir: string) => readdir(dir),
  async syncDir(dir: string): Promise<void> {
    const fh = await fsOpen(dir, 'r');
    try {
      await fh.sync();
    } catch (err) {
      // Some file systems refuse fsync on a directory; the rename itself has happened.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw err;
    } finally {
      await fh.close();
    }
  },
});
