import { access } from 'node:fs/promises';
import { basename } from 'node:path';
import { checkLine } from './chain.js';
import { AuditError } from './errors.js';
import { parseRotatedFileName } from './files.js';
import { readLines, type FileLine } from './internal/lines.js';
import type { AuditPublicKey } from './keys.js';
import { GENESIS_HASH, type AuditRecord } from './records.js';

/** AuditProblem names what {@link verifyAuditTrail} found wrong. */
export type AuditProblem = 'edited' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'bad-signature' | 'malformed';

/** AuditVerifyOptions configure {@link verifyAuditTrail}. */
export interface AuditVerifyOptions {
  /** publicKey verifies checkpoint signatures; without it signatures are not checked. */
  publicKey?: AuditPublicKey;
  /** checkpoints is the side file (`<path>.checkpoints`); without it a truncated tail cannot be detected. */
  checkpoints?: string;
  /** partial accepts a trail that starts after seq 1 (older files pruned); by default it must start at seq 1. */
  partial?: boolean;
}

/** AuditVerifyResult is the verdict on a trail. */
export interface AuditVerifyResult {
  ok: boolean;
  /** records counts the records that checked out (checkpoints included). */
  records: number;
  firstSeq?: number;
  lastSeq?: number;
  lastHash?: string;
  /** checkpoints counts checkpoint records in the chain; sideCheckpoints the side-file lines. */
  checkpoints: number;
  sideCheckpoints: number;
  /** signaturesChecked is true when a public key was given and every checkpoint seen was verified with it. */
  signaturesChecked: boolean;
  /** unsignedTail counts the records after the last checkpoint record: no signature covers them yet. */
  unsignedTail: number;
  /** torn reports an unterminated final line: a write cut short by a crash, not counted as a record. */
  torn?: { file: string; afterSeq: number; bytes: number };
  /** firstBadSeq is the first sequence number whose record is not intact at its place. */
  firstBadSeq?: number;
  problem?: AuditProblem;
  /** file and line locate the problem, when it is in a trail file. */
  file?: string;
  line?: number;
  message: string;
  /** files are the trail files in the order they were checked. */
  files: string[];
}

interface Failure {
  seq: number;
  problem: AuditProblem;
  message: string;
  file?: string;
  line?: number;
}

interface SideEntry {
  seq: number;
  hash: string;
  keyId: string;
  sig: string;
  line: number;
}

const RING = 4096;

/**
 * verifyAuditTrail checks a trail offline: it orders `files` by their seq ranges, checks every
 * line's hash, every `prev` link and the seq continuity, every checkpoint signature (with
 * `publicKey`), and the side file's signed checkpoints against the chain (a trail that ends before
 * a signed checkpoint's seq is `truncated`). It stops at the first problem and names the first
 * bad seq. An unterminated final line of the newest file is a torn write from a crash: it is
 * reported in `torn` and not counted, and is only a problem when a signed checkpoint covers it.
 *
 * @example
 * const r = await verifyAuditTrail(['audit.log.1-5000', 'audit.log'], {
 *   publicKey: await loadAuditPublicKey('audit_pub.pem'),
 *   checkpoints: 'audit.log.checkpoints',
 * });
 * if (!r.ok) console.error(`seq ${r.firstBadSeq}: ${r.problem}: ${r.message}`);
 */
export async function verifyAuditTrail(files: readonly string[], options: AuditVerifyOptions = {}): Promise<AuditVerifyResult> {
  if (!Array.isArray(files) || files.length === 0) throw new TypeError('audit: verify needs at least one file');
  const ordered = await orderFiles(files);
  const key = options.publicKey;
  const side = options.checkpoints === undefined ? [] : await readSide(options.checkpoints);
  const failures: Failure[] = [];
  if (!Array.isArray(side)) failures.push(side);
  const sideEntries = Array.isArray(side) ? side : [];
  const sideBySeq = new Map<number, SideEntry>();
  for (const e of sideEntries) {
    if (key !== undefined && (e.keyId !== key.keyId || !key.verify(e.seq, e.hash, e.sig))) {
      failures.push({
        // The checkpoint record a side-file line mirrors sits right after the record it covers.
        seq: e.seq + 1,
        problem: 'bad-signature',
        message: `side-file checkpoint for seq ${e.seq} (line ${e.line}) ${e.keyId !== key.keyId ? `is signed by key ${e.keyId}, not ${key.keyId}` : 'has an invalid signature'}`,
        file: options.checkpoints as string,
        line: e.line,
      });
      break;
    }
    // Only a checkpoint that verifies (or, without a key, any) is held against the chain.
    sideBySeq.set(e.seq, e);
  }

  const w = new Walk(ordered, options.partial === true, key, sideBySeq);
  const chainFailure = await w.run();
  if (chainFailure) failures.push(chainFailure);
  else {
    const lastSigned = sideEntries.reduce((m, e) => Math.max(m, e.seq), 0);
    if (lastSigned > w.lastSeq) {
      failures.push({
        seq: w.lastSeq + 1,
        problem: 'truncated',
        message: `the trail ends at seq ${w.lastSeq} but a signed checkpoint covers seq ${lastSigned}: records ${w.lastSeq + 1}–${lastSigned} (at least) were removed`,
      });
    }
  }

  const base: AuditVerifyResult = {
    ok: failures.length === 0,
    records: w.records,
    checkpoints: w.checkpoints,
    sideCheckpoints: sideEntries.length,
    signaturesChecked: key !== undefined,
    unsignedTail: w.records === 0 ? 0 : w.lastSeq - Math.max(w.lastCheckpointSeq, w.firstSeq - 1),
    message: '',
    files: ordered,
  };
  if (w.records > 0) {
    base.firstSeq = w.firstSeq;
    base.lastSeq = w.lastSeq;
    base.lastHash = w.prevHash;
  }
  if (w.torn) base.torn = w.torn;
  if (failures.length === 0) {
    base.message =
      w.records === 0
        ? 'no records'
        : `${w.records} records, seq ${w.firstSeq}–${w.lastSeq}, ${w.checkpoints} checkpoints${key ? ' (signatures verified)' : ' (signatures not checked: no public key)'}` +
          (base.unsignedTail > 0 ? `; ${base.unsignedTail} record${base.unsignedTail === 1 ? '' : 's'} after the last checkpoint not yet signed` : '') +
          (options.checkpoints === undefined ? '; no checkpoint side file: a truncated tail cannot be detected' : '') +
          (w.torn ? `; torn final line (${w.torn.bytes} bytes) after seq ${w.torn.afterSeq} in ${w.torn.file}: a write cut short by a crash, not counted` : '');
    return base;
  }
  failures.sort((a, b) => a.seq - b.seq);
  const f = failures[0] as Failure;
  base.firstBadSeq = f.seq;
  base.problem = f.problem;
  base.message = f.message;
  if (f.file !== undefined) base.file = f.file;
  if (f.line !== undefined) base.line = f.line;
  return base;
}

/** The chain walk: one pass over every line, in order, stopping at the first break. */
class Walk {
  records = 0;
  checkpoints = 0;
  firstSeq = 0;
  lastSeq = 0;
  lastCheckpointSeq = 0;
  prevHash = GENESIS_HASH;
  torn: AuditVerifyResult['torn'];
  private expected: number | undefined;
  private readonly ring: ({ seq: number; hash: string; prev: string } | undefined)[] = new Array(RING);

  constructor(
    private readonly files: string[],
    partial: boolean,
    private readonly key: AuditPublicKey | undefined,
    private readonly side: Map<number, SideEntry>,
  ) {
    if (!partial) this.expected = 1;
  }

  async run(): Promise<Failure | undefined> {
    const it = allLines(this.files);
    try {
      return await this.walk(it);
    } finally {
      // Stopping early must still close the file being read.
      await it.return(undefined);
    }
  }

  private async walk(it: AsyncGenerator<LineAt>): Promise<Failure | undefined> {
    for (let next = await it.next(); !next.done; ) {
      const { file, line, last } = next.value;
      next = await it.next();
      const at = { file, line: line.number };
      const e = this.expected ?? 1;
      if (!line.terminated) {
        if (last) {
          this.torn = { file, afterSeq: this.lastSeq, bytes: Buffer.byteLength(line.text) };
          return undefined;
        }
        return { seq: e, problem: 'malformed', message: `line ${line.number} of ${file} has no newline but is not the end of the trail`, ...at };
      }
      const c = checkLine(line.text);
      if (!c.ok) {
        const seq = this.expected ?? 1;
        if (c.kind === 'malformed') return { seq, problem: 'malformed', message: `record expected at seq ${seq} is malformed: ${c.reason}`, ...at };
        return { seq, problem: 'edited', message: `record at seq ${seq} was edited: ${c.reason}`, ...at };
      }
      const r = c.record;
      if (this.expected === undefined) {
        // --partial: the first record sets the start.
        this.expected = r.seq;
        this.prevHash = r.prev;
      }
      const want = this.expected;
      if (r.seq !== want) return { ...(await this.classifySeq(r, want, next.done ? undefined : next.value, it)), ...at };
      if (r.prev !== this.prevHash) {
        const peek = next.done ? undefined : checkLine(next.value.line.text);
        if (peek?.ok && peek.record.seq === r.seq && peek.record.prev === this.prevHash) {
          return { seq: r.seq, problem: 'inserted', message: `a record claiming seq ${r.seq} that does not link to seq ${r.seq - 1} was inserted before the genuine one`, ...at };
        }
        if (r.seq === 1 || this.records === 0) {
          return { seq: r.seq, problem: 'edited', message: `record ${r.seq} does not start the chain (prev is not ${r.seq === 1 ? 'the genesis hash' : 'as expected'})`, ...at };
        }
        return {
          seq: r.seq - 1,
          problem: 'edited',
          message: `record ${r.seq - 1} is not the one record ${r.seq} was chained to (its prev): it was replaced or edited and re-hashed`,
          ...at,
        };
      }
      if (r.type === 'checkpoint') {
        const f = this.checkCheckpoint(r);
        if (f) return { ...f, ...at };
      }
      const signed = this.side.get(r.seq);
      if (signed !== undefined && signed.hash !== r.hash) {
        return {
          seq: r.seq,
          problem: 'edited',
          message: `record ${r.seq} does not match the signed checkpoint for it in the side file: the chain was rewritten at or before seq ${r.seq}`,
          ...at,
        };
      }
      this.accept(r);
    }
    return undefined;
  }

  private checkCheckpoint(r: AuditRecord & { type: 'checkpoint' }): Omit<Failure, 'file' | 'line'> | undefined {
    if (r.coversSeq !== r.seq - 1 || r.coversHash !== r.prev) {
      const seq = Math.max(1, Math.min(r.coversSeq, r.seq - 1));
      return {
        seq,
        problem: 'edited',
        message: `checkpoint at seq ${r.seq} signs seq ${r.coversSeq} with hash ${r.coversHash.slice(0, 12)}…, but the chain has ${r.prev.slice(0, 12)}… at seq ${r.seq - 1}: records at or before seq ${seq} were rewritten`,
      };
    }
    this.checkpoints++;
    this.lastCheckpointSeq = r.seq;
    if (this.key === undefined) return undefined;
    if (r.keyId !== this.key.keyId) {
      return { seq: r.seq, problem: 'bad-signature', message: `checkpoint at seq ${r.seq} is signed by key ${r.keyId}, not by ${this.key.keyId}` };
    }
    if (!this.key.verify(r.coversSeq, r.coversHash, r.sig)) {
      return { seq: r.seq, problem: 'bad-signature', message: `checkpoint at seq ${r.seq} has an invalid signature` };
    }
    return undefined;
  }

  private accept(r: AuditRecord): void {
    if (this.records === 0) this.firstSeq = r.seq;
    this.records++;
    this.lastSeq = r.seq;
    this.prevHash = r.hash;
    this.expected = r.seq + 1;
    this.ring[r.seq % RING] = { seq: r.seq, hash: r.hash, prev: r.prev };
  }

  /** classifySeq explains a record whose own hash is fine but whose seq is not the one expected. */
  private async classifySeq(r: AuditRecord, want: number, following: LineAt | undefined, rest: AsyncGenerator<LineAt>): Promise<Omit<Failure, 'file' | 'line'>> {
    if (r.seq > want) {
      // Look ahead: is r.seq there twice (inserted), or is the missing seq further on (reordered)?
      let missingLater = false;
      let dupLater = false;
      for (let n = following; n !== undefined; n = await rest.next().then((x) => (x.done ? undefined : x.value))) {
        const c = checkLine(n.line.text);
        if (!c.ok) continue;
        if (c.record.seq === want) missingLater = true;
        if (c.record.seq === r.seq) dupLater = true;
      }
      if (dupLater) return { seq: want, problem: 'inserted', message: `a record claiming seq ${r.seq} was inserted where record ${want} belongs` };
      if (missingLater) return { seq: want, problem: 'reordered', message: `record ${r.seq} appears where record ${want} belongs; record ${want} comes later: records were reordered` };
      if (this.records === 0) {
        return { seq: want, problem: 'deleted', message: `the trail starts at seq ${r.seq}: records ${want}–${r.seq - 1} are missing (give the older rotated files too, or verify with partial)` };
      }
      return { seq: want, problem: 'deleted', message: `record${r.seq - want > 1 ? `s ${want}–${r.seq - 1} are` : ` ${want} is`} missing (seq ${want - 1} is followed by ${r.seq})` };
    }
    // r.seq < want: a second record for a seq already seen.
    const seen = await this.acceptedAt(r.seq);
    if (seen !== undefined && seen.hash === r.hash) {
      return { seq: want, problem: 'inserted', message: `a copy of record ${r.seq} was inserted where record ${want} belongs` };
    }
    if (seen !== undefined && seen.prev === r.prev) {
      return { seq: r.seq, problem: 'inserted', message: `two different records claim seq ${r.seq} and follow the same record: one of them was inserted` };
    }
    return { seq: want, problem: 'inserted', message: `a record claiming seq ${r.seq} was inserted where record ${want} belongs` };
  }

  private async acceptedAt(seq: number): Promise<{ seq: number; hash: string; prev: string } | undefined> {
    if (seq < this.firstSeq || seq > this.lastSeq) return undefined;
    const hit = this.ring[seq % RING];
    if (hit?.seq === seq) return hit;
    // Older than the ring: the accepted records are the first lines of the trail, in seq order.
    let index = seq - this.firstSeq;
    for await (const { line } of allLines(this.files)) {
      if (index-- === 0) {
        const c = checkLine(line.text);
        return c.ok ? { seq: c.record.seq, hash: c.record.hash, prev: c.record.prev } : undefined;
      }
    }
    return undefined;
  }
}

interface LineAt {
  file: string;
  line: FileLine;
  last: boolean;
}

async function* allLines(files: readonly string[]): AsyncGenerator<LineAt> {
  for (let i = 0; i < files.length; i++) {
    const file = files[i] as string;
    for await (const line of readLines(file)) yield { file, line, last: i === files.length - 1 };
  }
}

async function orderFiles(files: readonly string[]): Promise<string[]> {
  const keyed: { file: string; key: number }[] = [];
  for (const file of files) {
    let key = parseRotatedFileName(basename(file))?.firstSeq;
    try {
      if (key === undefined) {
        key = Infinity;
        for await (const line of readLines(file)) {
          try {
            const seq = (JSON.parse(line.text) as { seq?: unknown }).seq;
            if (typeof seq === 'number') key = seq;
          } catch {
            // unreadable first line: sort last; the walk reports it
          }
          break;
        }
      } else {
        await access(file);
      }
    } catch (err) {
      throw new AuditError('AUDIT_ERR_FILE', `audit: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
    keyed.push({ file, key });
  }
  keyed.sort((a, b) => a.key - b.key);
  return keyed.map((k) => k.file);
}

async function readSide(path: string): Promise<SideEntry[] | Failure> {
  const out: SideEntry[] = [];
  try {
    for await (const line of readLines(path)) {
      if (!line.terminated) break; // a torn side-file line: the crash rule, same as the trail
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(line.text) as Record<string, unknown>;
      } catch {
        v = {};
      }
      const { seq, hash, keyId, sig } = v;
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || typeof hash !== 'string' || typeof keyId !== 'string' || typeof sig !== 'string') {
        return { seq: (out.at(-1)?.seq ?? 0) + 1, problem: 'malformed', message: `line ${line.number} of the checkpoint file ${path} is not a checkpoint`, file: path, line: line.number };
      }
      out.push({ seq, hash, keyId, sig, line: line.number });
    }
  } catch (err) {
    throw new AuditError('AUDIT_ERR_FILE', `audit: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  return out;
}
