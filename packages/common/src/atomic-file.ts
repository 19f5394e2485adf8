import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** AtomicWriteOptions tune {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** mode is the file's permission bits (required: a key is 0o600, a certificate 0o644). */
  mode: number;
  /** createDir creates the parent directory when missing (default true). */
  createDir?: boolean;
}

/**
 * writeFileAtomic writes `data` to a temporary file beside `path` with `options.mode`, syncs it,
 * renames it over `path` and syncs the directory, so readers — and a crash at any point — see the
 * old file or the new one, never half of one. The temporary file is removed when a step fails.
 *
 * @example
 * await writeFileAtomic('./ids/crm/svid_key.pem', keyPem, { mode: 0o600 });
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions): Promise<void> {
  const dir = dirname(path);
  if (options.createDir !== false) await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', options.mode);
  try {
    await fh.writeFile(data);
    // open() applies the umask; chmod sets exactly the mode asked for.
    await fh.chmod(options.mode);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  // The rename is durable only once the directory entry is; not every platform lets a directory be
  // opened for fsync, and the file itself is already safe, so a failure here is not an error.
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // best effort
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** existingFiles returns those of `paths` that exist, in order. */
export async function existingFiles(paths: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const p of paths) {
    try {
      await access(p, constants.F_OK);
      found.push(p);
    } catch {
      // absent
    }
  }
  return found;
}
