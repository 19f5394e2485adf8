import type { AuditFileHandle, AuditFs } from '../fs-layer.js';
import { nodeAuditFs } from '../fs-layer.js';

const CHUNK = 1 << 20;
const NL = 0x0a;

/** A line of a trail file: its text (no newline), whether a newline ended it, its byte offset. */
export interface FileLine {
  text: string;
  terminated: boolean;
  offset: number;
  /** number is the 1-based line number in its file. */
  number: number;
}

/** readLines yields every line of a file in order, in bounded memory. */
export async function* readLines(path: string, fs: AuditFs = nodeAuditFs): AsyncGenerator<FileLine> {
  const fh = await fs.open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let carry: Buffer[] = [];
    let carryStart = 0;
    let pos = 0;
    let number = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
      if (bytesRead === 0) break;
      let start = 0;
      for (let i = buf.indexOf(NL, 0); i >= 0 && i < bytesRead; i = buf.indexOf(NL, i + 1)) {
        const piece = buf.subarray(start, i);
        const text = carry.length > 0 ? Buffer.concat([...carry, piece]).toString('utf8') : piece.toString('utf8');
        yield { text, terminated: true, offset: carry.length > 0 ? carryStart : pos + start, number: ++number };
        carry = [];
        start = i + 1;
      }
      if (start < bytesRead) {
        if (carry.length === 0) carryStart = pos + start;
        carry.push(Buffer.from(buf.subarray(start, bytesRead)));
      }
      pos += bytesRead;
    }
    if (carry.length > 0) yield { text: Buffer.concat(carry).toString('utf8'), terminated: false, offset: carryStart, number: ++number };
  } finally {
    await fh.close();
  }
}

/** FileTail describes the end of a trail file. */
export interface FileTail {
  size: number;
  /** lastLine is the last newline-terminated line, if any. */
  lastLine?: string;
  /** completeEnd is the byte length up to and including the last newline (0 if none). */
  completeEnd: number;
  /** firstLine is the first newline-terminated line, if any. */
  firstLine?: string;
}

/** readTail finds the first and last complete lines of an open file, reading backwards in chunks. */
export async function readTail(fh: AuditFileHandle): Promise<FileTail> {
  const { size } = await fh.stat();
  if (size === 0) return { size, completeEnd: 0 };
  const lastNl = await findNewlineBackwards(fh, size - 1);
  if (lastNl < 0) return { size, completeEnd: 0 };
  const prevNl = lastNl === 0 ? -1 : await findNewlineBackwards(fh, lastNl - 1);
  const lastLine = await readRange(fh, prevNl + 1, lastNl);
  const firstNl = prevNl < 0 ? lastNl : await findNewlineForwards(fh, 0);
  const firstLine = prevNl < 0 ? lastLine : await readRange(fh, 0, firstNl);
  return { size, lastLine, completeEnd: lastNl + 1, firstLine };
}

async function findNewlineBackwards(fh: AuditFileHandle, from: number): Promise<number> {
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, 64 * 1024));
  let end = from + 1;
  while (end > 0) {
    const start = Math.max(0, end - buf.length);
    const len = end - start;
    const { bytesRead } = await fh.read(buf, 0, len, start);
    const i = buf.subarray(0, bytesRead).lastIndexOf(NL);
    if (i >= 0) return start + i;
    end = start;
  }
  return -1;
}

async function findNewlineForwards(fh: AuditFileHandle, from: number): Promise<number> {
  const buf = Buffer.allocUnsafe(64 * 1024);
  let pos = from;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) return -1;
    const i = buf.subarray(0, bytesRead).indexOf(NL);
    if (i >= 0) return pos + i;
    pos += bytesRead;
  }
}

/** readRange reads bytes [start, end) as UTF-8. */
export async function readRange(fh: AuditFileHandle, start: number, end: number): Promise<string> {
  const buf = Buffer.allocUnsafe(end - start);
  let off = 0;
  while (off < buf.length) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, start + off);
    if (bytesRead === 0) break;
    off += bytesRead;
  }
  return buf.subarray(0, off).toString('utf8');
}
