import { basename, dirname } from 'node:path';
import { checkLine } from '../chain.js';
import { AuditError } from '../errors.js';
import { checkpointFileName, listTrailFiles, parseRotatedFileName } from '../files.js';
import type { AuditFileHandle, AuditFs } from '../fs-layer.js';
import { GENESIS_HASH, type AuditCheckpoint, type AuditRecord } from '../records.js';
import { readTail } from './lines.js';

/** AuditRecovery reports what reopening a trail after a crash repaired. */
export interface AuditRecovery {
  /** tornBytes is the length of the unterminated final line cut off the trail file (0 if none). */
  tornBytes: number;
  /** tornSavedTo is where the cut-off bytes were saved (`<path>.torn-<afterSeq>-<ms>`). */
  tornSavedTo?: string;
  /** afterSeq is the last complete record before the torn line. */
  afterSeq: number;
  /** sideTornBytes is the length of an unterminated line cut off the checkpoint side file. */
  sideTornBytes: number;
  /** sideRestored is set when a checkpoint record had no side-file line (crash in between) and it was added. */
  sideRestored?: number;
}

/** ResumeState is where an existing trail left off. */
export interface ResumeState {
  lastSeq: number;
  lastHash: string;
  /** lastIsCheckpoint tells whether the last record is a checkpoint (nothing left to sign). */
  lastIsCheckpoint: boolean;
  /** fileFirstSeq is the seq of the first record in the live file (lastSeq + 1 when it is empty). */
  fileFirstSeq: number;
  fileRecords: boolean;
  fileStartMs: number | undefined;
  fileBytes: number;
  /** sideLastSeq is the seq covered by the last line of the checkpoint side file (0 if none). */
  sideLastSeq: number;
  recovery?: AuditRecovery;
}

const corrupt = (message: string): AuditError => new AuditError('AUDIT_ERR_CORRUPT_TAIL', message);

/**
 * resume reads the tail of the live file (and, when it holds no record, of the newest rotated
 * file) to continue `seq` and `prev`. An unterminated final line is a torn write from a crash: it
 * is saved aside and cut off. A complete last line that is not a valid record is corruption and
 * is reported, never continued from.
 */
export async function resume(fs: AuditFs, path: string, fh: AuditFileHandle, now: number): Promise<ResumeState> {
  const tail = await readTail(fh);
  let last: AuditRecord | undefined;
  let fileFirstSeq = 0;
  let fileStartMs: number | undefined;
  if (tail.lastLine !== undefined) {
    last = checkedLast(tail.lastLine, path);
    const first = tail.firstLine === tail.lastLine ? last : firstRecord(tail.firstLine ?? '', path);
    fileFirstSeq = first.seq;
    const t = Date.parse(first.time);
    fileStartMs = Number.isFinite(t) ? t : now;
  }
  let lastSeq = last?.seq ?? 0;
  let lastHash = last?.hash ?? GENESIS_HASH;
  let lastIsCheckpoint = last?.type === 'checkpoint';
  let lastRecord = last;
  if (last === undefined) {
    const prev = await newestRotated(fs, path);
    if (prev !== undefined) {
      lastSeq = prev.seq;
      lastHash = prev.hash;
      lastIsCheckpoint = prev.type === 'checkpoint';
      lastRecord = prev;
    }
    fileFirstSeq = lastSeq + 1;
  }

  // Check against the side file before repairing anything: a trail that ends before a signed
  // checkpoint is left exactly as found, for the investigation.
  const sidePath = checkpointFileName(path);
  const sideSeq = await readSideSeq(fs, sidePath);
  if (sideSeq > lastSeq) {
    throw corrupt(
      `audit: the trail ends at seq ${lastSeq} but ${sidePath} holds a signed checkpoint for seq ${sideSeq}: records were lost or removed; run \`switchboard audit verify\``,
    );
  }

  let recovery: AuditRecovery | undefined;
  let fileBytes = tail.size;
  if (tail.completeEnd < tail.size) {
    const tornBytes = tail.size - tail.completeEnd;
    const fragment = Buffer.alloc(tornBytes);
    await fh.read(fragment, 0, tornBytes, tail.completeEnd);
    const tornSavedTo = `${path}.torn-${lastSeq}-${now}`;
    const out = await fs.open(tornSavedTo, 'wx', 0o600);
    try {
      await out.write(fragment, 0, fragment.length, null);
      await out.sync();
    } finally {
      await out.close();
    }
    await fh.truncate(tail.completeEnd);
    await fh.sync();
    await fs.syncDir(dirname(path));
    fileBytes = tail.completeEnd;
    recovery = { tornBytes, tornSavedTo, afterSeq: lastSeq, sideTornBytes: 0 };
  }

  const side = await resumeSide(fs, path, sideSeq, lastRecord);
  if (side.tornBytes > 0 || side.restored !== undefined) {
    recovery ??= { tornBytes: 0, afterSeq: lastSeq, sideTornBytes: 0 };
    recovery.sideTornBytes = side.tornBytes;
    if (side.restored !== undefined) recovery.sideRestored = side.restored;
  }
  const state: ResumeState = {
    lastSeq,
    lastHash,
    lastIsCheckpoint,
    fileFirstSeq,
    fileRecords: fileFirstSeq <= lastSeq,
    fileStartMs,
    fileBytes,
    sideLastSeq: side.lastSeq,
  };
  if (recovery !== undefined) state.recovery = recovery;
  return state;
}

function checkedLast(line: string, file: string): AuditRecord {
  const c = checkLine(line);
  if (!c.ok) {
    throw corrupt(`audit: the last record of ${file} does not check out (${c.reason}); run \`switchboard audit verify\` and move the file aside before restarting`);
  }
  return c.record;
}

function firstRecord(line: string, file: string): AuditRecord {
  const c = checkLine(line);
  if (!c.ok) throw corrupt(`audit: the first record of ${file} does not check out (${c.reason}); run \`switchboard audit verify\``);
  return c.record;
}

async function newestRotated(fs: AuditFs, path: string): Promise<AuditRecord | undefined> {
  const files = (await listTrailFiles(path, fs)).filter((f) => basename(f) !== basename(path));
  const newest = files.at(-1);
  if (newest === undefined) return undefined;
  const range = parseRotatedFileName(newest);
  const fh = await fs.open(newest, 'r');
  try {
    const tail = await readTail(fh);
    if (tail.lastLine === undefined || tail.completeEnd < tail.size) {
      throw corrupt(`audit: rotated file ${newest} does not end with a complete record`);
    }
    const last = checkedLast(tail.lastLine, newest);
    if (range !== undefined && last.seq !== range.lastSeq) {
      throw corrupt(`audit: rotated file ${newest} ends at seq ${last.seq}, its name says ${range.lastSeq}`);
    }
    return last;
  } finally {
    await fh.close();
  }
}

/** readSideSeq returns the seq the side file's last complete line covers (0 when there is none). */
async function readSideSeq(fs: AuditFs, sidePath: string): Promise<number> {
  let fh: AuditFileHandle;
  try {
    fh = await fs.open(sidePath, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  try {
    const tail = await readTail(fh);
    if (tail.lastLine === undefined) return 0;
    let seq: unknown;
    try {
      seq = (JSON.parse(tail.lastLine) as { seq?: unknown }).seq;
    } catch {
      seq = undefined;
    }
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq)) throw corrupt(`audit: the last line of ${sidePath} is not a checkpoint`);
    return seq;
  } finally {
    await fh.close();
  }
}

/**
 * resumeSide repairs the side file: cuts a torn final line (the side file is written after the
 * chain is durable, so that is a crash during the write; the checkpoint record in the chain still
 * holds the signature) and adds the line of a checkpoint record that has none.
 */
async function resumeSide(
  fs: AuditFs,
  path: string,
  sideSeq: number,
  lastRecord: AuditRecord | undefined,
): Promise<{ lastSeq: number; tornBytes: number; restored?: number }> {
  const sidePath = checkpointFileName(path);
  let tornBytes = 0;
  let fh: AuditFileHandle | undefined;
  try {
    fh = await fs.open(sidePath, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (fh !== undefined) {
    try {
      const tail = await readTail(fh);
      if (tail.completeEnd < tail.size) {
        tornBytes = tail.size - tail.completeEnd;
        await fh.truncate(tail.completeEnd);
        await fh.sync();
      }
    } finally {
      await fh.close();
    }
  }
  if (lastRecord?.type === 'checkpoint' && sideSeq < lastRecord.coversSeq) {
    await appendSideLine(fs, sidePath, lastRecord);
    return { lastSeq: lastRecord.coversSeq, tornBytes, restored: lastRecord.coversSeq };
  }
  return { lastSeq: sideSeq, tornBytes };
}

/** sideLine returns the side-file line (with newline) of a checkpoint record. */
export function sideLine(r: AuditCheckpoint & { time: string }): string {
  // Keys in canonical (sorted) order.
  return `${JSON.stringify({ hash: r.coversHash, keyId: r.keyId, seq: r.coversSeq, sig: r.sig, time: r.time })}\n`;
}

async function appendSideLine(fs: AuditFs, sidePath: string, r: AuditCheckpoint & { time: string }): Promise<void> {
  const fh = await fs.open(sidePath, 'a', 0o600);
  try {
    const buf = Buffer.from(sideLine(r), 'utf8');
    await fh.write(buf, 0, buf.length, null);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
