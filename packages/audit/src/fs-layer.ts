import { open as fsOpen, readdir, rename } from 'node:fs/promises';

/**
 * AuditFileHandle is the part of Node's `FileHandle` the trail uses. Tests inject a wrapper to
 * count fsyncs or to make a write fail.
 */
export interface AuditFileHandle {
  write(buffer: Uint8Array, offset: number, length: number, position: number | null): Promise<{ bytesWritten: number }>;
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

/** nodeAuditFs is {@link AuditFs} over `node:fs/promises`. */
export const nodeAuditFs: AuditFs = Object.freeze({
  open: (path: string, flags: string, mode?: number) => fsOpen(path, flags, mode),
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
