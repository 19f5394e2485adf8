import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuditError } from '../errors.js';
import { readLines } from '../internal/lines.js';
import { reportError, UsageError, type CliIo } from '@switchboard/common/cli';
import { AUDIT_REPORT } from './io.js';

/** AuditTailCliOptions are the arguments and flags of `switchboard audit tail`. */
export interface AuditTailCliOptions {
  file: string;
  /** lines is how many matching records to print first (default 20). */
  lines?: string | number;
  follow?: boolean;
  agent?: string;
  server?: string;
  /** tool matches the record's `name` (tool or prompt name, resource URI). */
  tool?: string;
  decision?: string;
  type?: string;
  json?: boolean;
  /** signal ends `--follow`. */
  signal?: AbortSignal;
  /** pollMs is how often `--follow` looks for new records (default 250). */
  pollMs?: number;
}

type Rec = Record<string, unknown>;

/**
 * runAuditTail prints the last `lines` records of a trail file that match the filters; with
 * `follow` it keeps printing new ones (following the live file across rotation) until `signal`
 * aborts. It reads records, it does not verify them (use `audit verify`). Returns the exit code.
 */
export async function runAuditTail(opts: AuditTailCliOptions, io: CliIo): Promise<number> {
  try {
    const n = Number(opts.lines ?? 20);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError('AUDIT_ERR_USAGE', `audit tail: -n must be a whole number, got ${JSON.stringify(opts.lines)}`);
    if (opts.decision !== undefined && opts.decision !== 'allow' && opts.decision !== 'deny') {
      throw new UsageError('AUDIT_ERR_USAGE', `audit tail: --decision must be allow or deny, got ${JSON.stringify(opts.decision)}`);
    }
    const match = matcher(opts);
    const last: string[] = [];
    let offset = 0;
    try {
      for await (const line of readLines(opts.file)) {
        if (!line.terminated) break;
        offset = line.offset + Buffer.byteLength(line.text) + 1;
        const out = render(line.text, match, opts.json === true);
        if (out === undefined || n === 0) continue;
        last.push(out);
        if (last.length > n) last.shift();
      }
    } catch (err) {
      throw new AuditError('AUDIT_ERR_FILE', `audit: cannot read ${opts.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
    for (const l of last) io.stdout.write(`${l}\n`);
    if (opts.follow) await follow(opts, io, match, offset);
    return 0;
  } catch (err) {
    return reportError(err, io, AUDIT_REPORT);
  }
}

async function follow(opts: AuditTailCliOptions, io: CliIo, match: (r: Rec) => boolean, start: number): Promise<void> {
  const pollMs = opts.pollMs ?? 250;
  let fh: FileHandle = await open(opts.file, 'r');
  let offset = start;
  let carry = '';
  try {
    while (!opts.signal?.aborted) {
      // Drain what the open file holds; after a rotation that is the rest of the renamed file.
      const buf = Buffer.allocUnsafe(64 * 1024);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        const text = carry + buf.subarray(0, bytesRead).toString('utf8');
        const parts = text.split('\n');
        carry = parts.pop() ?? '';
        for (const p of parts) {
          const out = render(p, match, opts.json === true);
          if (out !== undefined) io.stdout.write(`${out}\n`);
        }
      }
      const [cur, now] = await Promise.all([fh.stat(), open(opts.file, 'r').then((h) => h, () => undefined)]);
      if (now !== undefined) {
        const st = await now.stat();
        if (st.ino !== cur.ino || st.dev !== cur.dev) {
          await fh.close();
          fh = now;
          offset = 0;
          carry = '';
          continue;
        }
        await now.close();
      }
      try {
        await sleep(pollMs, undefined, opts.signal ? { signal: opts.signal } : undefined);
      } catch {
        break;
      }
    }
  } finally {
    await fh.close();
  }
}

function matcher(o: AuditTailCliOptions): (r: Rec) => boolean {
  const want: [string, string][] = [];
  if (o.agent !== undefined) want.push(['agent', o.agent]);
  if (o.server !== undefined) want.push(['server', o.server]);
  if (o.tool !== undefined) want.push(['name', o.tool]);
  if (o.decision !== undefined) want.push(['decision', o.decision]);
  if (o.type !== undefined) want.push(['type', o.type]);
  return (r) => want.every(([k, v]) => r[k] === v);
}

function render(line: string, match: (r: Rec) => boolean, json: boolean): string | undefined {
  if (line === '') return undefined;
  let r: Rec;
  try {
    r = JSON.parse(line) as Rec;
  } catch {
    return undefined;
  }
  if (r === null || typeof r !== 'object' || !match(r)) return undefined;
  return json ? line : formatRecord(r);
}

const HIDDEN = new Set(['seq', 'time', 'prev', 'hash', 'type']);

/** formatRecord renders one record on one line for a terminal; control and bidi characters are escaped. */
export function formatRecord(r: Rec): string {
  const s = (v: unknown): string => safe(typeof v === 'string' ? v : JSON.stringify(v) ?? 'null');
  const head = `#${s(r['seq'])} ${s(r['time'])} ${s(r['type'])}`;
  const name = typeof r['name'] === 'string' ? ` ${s(r['name'])}` : '';
  switch (r['type']) {
    case 'request':
      return `${head} ${s(r['decision']).toUpperCase()} ${s(r['agent'])} → ${s(r['server'])} ${s(r['method'])}${name} rule=${r['ruleId'] === null ? '(default deny)' : s(r['ruleId'])} reason=${s(JSON.stringify(r['reason']))}`;
    case 'response': {
      const red = r['redactions'] && typeof r['redactions'] === 'object' ? Object.entries(r['redactions'] as Rec).filter(([, c]) => c !== 0) : [];
      return `${head} ${s(r['status'])}${r['errorCode'] !== undefined ? ` ${s(r['errorCode'])}` : ''} ${s(r['agent'])} → ${s(r['server'])} ${s(r['method'])}${name} ${s(r['latencyMs'])}ms ${s(r['bytes'])}B${red.length > 0 ? ` redacted ${red.map(([k, c]) => `${s(k)}=${s(c)}`).join(',')}` : ''}`;
    }
    case 'session.open':
    case 'session.resume':
      return `${head} ${s(r['agent'])} → ${s(r['server'])} via ${s(r['connector'])} session=${s(r['sessionId'])}${r['resumeId'] !== undefined ? ` resumes=${s(r['resumeId'])}` : ''}`;
    case 'egress.denied':
      return `${head} ${s(r['agent'])} → ${s(r['server'])} to ${s(r['destination'])}:${s(r['port'])} session=${s(r['sessionId'])} reason=${s(JSON.stringify(r['reason']))}`;
    case 'checkpoint':
      return `${head} signs seq ${s(r['coversSeq'])} key=${s(r['keyId'])}`;
    default:
      return `${head} ${Object.entries(r)
        .filter(([k]) => !HIDDEN.has(k))
        .map(([k, v]) => `${safe(k)}=${s(v)}`)
        .join(' ')}`;
  }
}

// C0/C1 controls, DEL, and bidi overrides/isolates would let a record rewrite the operator's terminal.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function safe(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
