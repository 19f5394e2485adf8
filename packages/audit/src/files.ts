import { basename, dirname, join } from 'node:path';
import { nodeAuditFs, type AuditFs } from './fs-layer.js';

/**
 * File naming: the live trail is `<path>`; a rotated file is `<path>.<firstSeq>-<lastSeq>`; the
 * checkpoint side file is `<path>.checkpoints`; a torn final line cut off at reopen is saved as
 * `<path>.torn-<afterSeq>-<unix ms>`.
 */

const RANGE = /\.(\d+)-(\d+)$/;

/** rotatedFileName returns the name a rotated trail file gets: `<path>.<firstSeq>-<lastSeq>`. */
export function rotatedFileName(path: string, firstSeq: number, lastSeq: number): string {
  return `${path}.${firstSeq}-${lastSeq}`;
}

/** checkpointFileName returns the checkpoint side file of a trail: `<path>.checkpoints`. */
export function checkpointFileName(path: string): string {
  return `${path}.checkpoints`;
}

/** parseRotatedFileName reads the seq range from a rotated file name, or undefined. */
export function parseRotatedFileName(file: string): { firstSeq: number; lastSeq: number } | undefined {
  const m = RANGE.exec(file);
  if (!m) return undefined;
  const firstSeq = Number(m[1]);
  const lastSeq = Number(m[2]);
  if (!Number.isSafeInteger(firstSeq) || !Number.isSafeInteger(lastSeq) || firstSeq < 1 || lastSeq < firstSeq - 1) return undefined;
  return { firstSeq, lastSeq };
}

/**
 * listTrailFiles returns the files of the trail at `path`: its rotated files in seq order, then
 * `path` itself. Paths that do not exist are left out.
 */
export async function listTrailFiles(path: string, fs: AuditFs = nodeAuditFs): Promise<string[]> {
  const dir = dirname(path);
  const base = basename(path);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return [];
  }
  const rotated: { file: string; firstSeq: number }[] = [];
  let current = false;
  for (const n of names) {
    if (n === base) current = true;
    else if (n.startsWith(`${base}.`)) {
      const range = parseRotatedFileName(n);
      if (range && n === `${base}.${range.firstSeq}-${range.lastSeq}`) rotated.push({ file: join(dir, n), firstSeq: range.firstSeq });
    }
  }
  rotated.sort((a, b) => a.firstSeq - b.firstSeq);
  const out = rotated.map((r) => r.file);
  if (current) out.push(path);
  return out;
}
