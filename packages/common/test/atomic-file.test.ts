import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existingFiles, writeFileAtomic } from '../src/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sb-atomic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('writes the file with exactly the mode asked for, whatever the umask', async () => {
    const old = process.umask(0o077);
    try {
      await writeFileAtomic(join(dir, 'cert.pem'), 'cert', { mode: 0o644 });
      await writeFileAtomic(join(dir, 'key.pem'), Buffer.from('key'), { mode: 0o600 });
    } finally {
      process.umask(old);
    }
    expect((await stat(join(dir, 'cert.pem'))).mode & 0o777).toBe(0o644);
    expect((await stat(join(dir, 'key.pem'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'key.pem'), 'utf8')).toBe('key');
  });

  it('replaces an existing file and leaves no temporary file behind', async () => {
    const p = join(dir, 'pins.json');
    await writeFile(p, 'old');
    await writeFileAtomic(p, 'new', { mode: 0o644 });
    expect(await readFile(p, 'utf8')).toBe('new');
    expect(await readdir(dir)).toEqual(['pins.json']);
  });

  it('creates the parent directory unless told not to', async () => {
    await writeFileAtomic(join(dir, 'a', 'b', 'f'), 'x', { mode: 0o600 });
    expect(await readFile(join(dir, 'a', 'b', 'f'), 'utf8')).toBe('x');
    await expect(writeFileAtomic(join(dir, 'missing', 'f'), 'x', { mode: 0o600, createDir: false })).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('leaves what was there, and no temporary file, when the rename fails', async () => {
    // A non-empty directory in the way makes rename(2) fail, for root too.
    const p = join(dir, 'f');
    await mkdir(p);
    await writeFile(join(p, 'inside'), 'kept');
    await expect(writeFileAtomic(p, 'new', { mode: 0o644 })).rejects.toMatchObject({ code: expect.stringMatching(/^(EISDIR|ENOTEMPTY|EEXIST)$/) });
    expect(await readdir(dir)).toEqual(['f']);
    expect(await readFile(join(p, 'inside'), 'utf8')).toBe('kept');
  });
});

describe('existingFiles', () => {
  it('returns the paths that exist, in order', async () => {
    await writeFile(join(dir, 'b'), '');
    await writeFile(join(dir, 'a'), '');
    expect(await existingFiles([join(dir, 'b'), join(dir, 'c'), join(dir, 'a')])).toEqual([join(dir, 'b'), join(dir, 'a')]);
  });
});
