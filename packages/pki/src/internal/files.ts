import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';

/**
 * writeFileAtomic writes `data` to a temporary file beside `path` with `mode`, syncs it and renames
 * it over `path`, so readers see the old file or the new one, never half of one.
 */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
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
}

/** existing returns those of `paths` that exist. */
export async function existing(paths: readonly string[]): Promise<string[]> {
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
