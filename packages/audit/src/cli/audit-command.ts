import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { checkpointFileName, parseRotatedFileName } from '../files.js';
import { AUDIT_KEY_FILES, generateAuditKey, loadAuditPublicKey, writeAuditKeyFiles } from '../keys.js';
import { verifyAuditTrail, type AuditVerifyOptions } from '../verify.js';
import { reportError, UsageError, type CliIo } from '@switchboard/common/cli';
import { AUDIT_REPORT } from './io.js';
import { runAuditTail, type AuditTailCliOptions } from './tail-command.js';

export { runAuditTail };
export type { AuditTailCliOptions };

/** AuditVerifyCliOptions are the arguments and flags of `switchboard audit verify`. */
export interface AuditVerifyCliOptions {
  files: string[];
  /** key is the public key file (`audit_pub.pem`). */
  key?: string;
  /** checkpoints is the side file; found next to the trail when not given. */
  checkpoints?: string;
  partial?: boolean;
  /** allowUnsigned accepts records no signed checkpoint covers (an unsigned trail, or the tail after the last checkpoint). */
  allowUnsigned?: boolean;
  json?: boolean;
}

const TORN = /\.torn-\d+-\d+$/;

/**
 * runAuditVerify checks a trail and prints `OK` with counts, or the first bad seq and the problem.
 * Returns 0 when the trail is intact and every record is covered by a signed checkpoint, 1 when it
 * was tampered with (or is damaged), 2 on usage errors (no file, an unreadable file or key), 3 when
 * it is intact but records no signed checkpoint covers remain (unsigned trail, or the tail after the
 * last checkpoint of a relay that did not stop cleanly) — `--allow-unsigned` accepts them (0).
 */
export async function runAuditVerify(opts: AuditVerifyCliOptions, io: CliIo): Promise<number> {
  try {
    let checkpoints = opts.checkpoints;
    const files: string[] = [];
    for (const f of opts.files) {
      // A shell glob (`audit.log*`) brings the side file and saved torn fragments along.
      if (f.endsWith('.checkpoints')) {
        checkpoints ??= f;
        continue;
      }
      if (TORN.test(f)) {
        if (!opts.json) io.stderr.write(`note: skipping ${f} (a torn write saved aside at reopen)\n`);
        continue;
      }
      files.push(f);
    }
    if (files.length === 0) throw new UsageError('AUDIT_ERR_USAGE', 'audit verify: name at least one trail file');
    let found = false;
    if (checkpoints === undefined) {
      const guess = sideFileNextTo(files);
      if (guess !== undefined) {
        checkpoints = guess;
        found = true;
      }
    }
    const vo: AuditVerifyOptions = { partial: opts.partial === true };
    if (opts.key !== undefined) vo.publicKey = await loadAuditPublicKey(opts.key);
    if (checkpoints !== undefined) vo.checkpoints = checkpoints;
    const r = await verifyAuditTrail(files, vo);
    const unsigned = r.ok && r.unsignedTail > 0 && opts.allowUnsigned !== true;
    if (opts.json) {
      io.stdout.write(`${JSON.stringify({ ...r, unsignedAccepted: r.unsignedTail > 0 && opts.allowUnsigned === true, checkpointFile: checkpoints ?? null, keyId: vo.publicKey?.keyId ?? null }, null, 2)}\n`);
      return r.ok ? (unsigned ? 3 : 0) : 1;
    }
    if (found) io.stdout.write(`using checkpoint file ${checkpoints}\n`);
    if (r.ok) {
      io.stdout.write(`${unsigned ? 'UNSIGNED' : 'OK'}: ${r.message}\n`);
      if (r.records > 0) io.stdout.write(`  last hash ${r.lastHash}\n`);
      if (vo.publicKey === undefined) io.stderr.write('warning: no --key: checkpoint signatures were not verified\n');
      if (checkpoints === undefined) io.stderr.write('warning: no checkpoint file: a truncated tail cannot be detected\n');
      if (unsigned) {
        const first = (r.lastSeq ?? 0) - r.unsignedTail + 1;
        io.stdout.write(
          `  ${r.unsignedTail} record${r.unsignedTail === 1 ? '' : 's'} (seq ${first}–${r.lastSeq}) no signed checkpoint covers: a cut-off or rewritten tail there would not be detected; --allow-unsigned accepts them\n`,
        );
        return 3;
      }
      return 0;
    }
    const where = r.file !== undefined ? ` (${r.file}${r.line !== undefined ? ` line ${r.line}` : ''})` : '';
    io.stdout.write(`FAILED: first bad seq ${r.firstBadSeq}: ${r.problem}${where}\n  ${r.message}\n`);
    if (r.records > 0) io.stdout.write(`  intact: ${r.records} records, seq ${r.firstSeq}–${r.lastSeq}\n`);
    return 1;
  } catch (err) {
    return reportError(err, io, AUDIT_REPORT);
  }
}

function sideFileNextTo(files: string[]): string | undefined {
  for (const f of files) {
    const range = parseRotatedFileName(basename(f));
    const live = range ? f.slice(0, f.length - `.${range.firstSeq}-${range.lastSeq}`.length) : f;
    const side = checkpointFileName(live);
    if (existsSync(side)) return side;
  }
  return undefined;
}

/** AuditKeygenCliOptions are the flags of `switchboard audit keygen`. */
export interface AuditKeygenCliOptions {
  dir: string;
  force?: boolean;
}

/** runAuditKeygen writes a checkpoint signing key pair (`audit_key.pem`, `audit_pub.pem`) into a directory. */
export async function runAuditKeygen(opts: AuditKeygenCliOptions, io: CliIo): Promise<number> {
  try {
    const dir = resolve(opts.dir);
    if (!existsSync(dir)) throw new UsageError('AUDIT_ERR_USAGE', `audit keygen: directory ${dir} does not exist`);
    const key = generateAuditKey();
    await writeAuditKeyFiles(dir, key, { force: opts.force === true });
    io.stdout.write(
      [
        `Created audit checkpoint key ${key.keyId} in ${dir}`,
        `  ${AUDIT_KEY_FILES.privateKey} (mode 0600) signs checkpoints: give it to the relay`,
        `  ${AUDIT_KEY_FILES.publicKey} verifies them: give it to auditors (switchboard audit verify --key ${join(dir, AUDIT_KEY_FILES.publicKey)})`,
        '',
      ].join('\n'),
    );
    return 0;
  } catch (err) {
    return reportError(err, io, AUDIT_REPORT);
  }
}

/** auditCommand builds `switchboard audit` (verify, tail, keygen). */
export function auditCommand(io: CliIo, setExit: (code: number) => void): Command {
  const audit = new Command('audit').description('verify and read the tamper-evident audit trail');
  audit
    .command('verify')
    .description('check the hash chain, the seq continuity and the checkpoint signatures; exit 1 on tampering, 3 when records no signed checkpoint covers remain')
    .argument('<file...>', 'trail files (rotated ones in any order, e.g. audit.log*)')
    .option('--key <file>', `checkpoint public key (${AUDIT_KEY_FILES.publicKey})`)
    .option('--checkpoints <file>', 'checkpoint side file (default: <trail>.checkpoints when present)')
    .option('--partial', 'accept a trail that starts after seq 1 (older files pruned)')
    .option('--allow-unsigned', 'accept records no signed checkpoint covers (else exit 3): an unsigned trail, or the tail of a relay that did not stop cleanly')
    .option('--json', 'print the result as JSON')
    .action(async (files: string[], o: Omit<AuditVerifyCliOptions, 'files'>) => setExit(await runAuditVerify({ ...o, files }, io)));
  audit
    .command('tail')
    .description('print the last records, optionally filtered, optionally following the file')
    .argument('<file>', 'the live trail file')
    .option('-n, --lines <n>', 'how many records to print', '20')
    .option('-f, --follow', 'keep printing records as they are appended (across rotation)')
    .option('--agent <id>', 'only records of this agent SPIFFE ID')
    .option('--server <name>', 'only records about this server')
    .option('--tool <name>', 'only records naming this tool (or prompt, or resource)')
    .addOption(new Option('--decision <decision>', 'only requests with this decision').choices(['allow', 'deny']))
    .option('--type <type>', 'only records of this type (request, response, session.open, …)')
    .option('--json', 'print records as JSON lines')
    .action(async (file: string, o: Omit<AuditTailCliOptions, 'file'>) => {
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      if (o.follow) process.once('SIGINT', stop).once('SIGTERM', stop);
      try {
        setExit(await runAuditTail({ ...o, file, signal: ac.signal }, io));
      } finally {
        process.off('SIGINT', stop).off('SIGTERM', stop);
      }
    });
  audit
    .command('keygen')
    .description(`create the checkpoint signing key pair (${AUDIT_KEY_FILES.privateKey}, ${AUDIT_KEY_FILES.publicKey})`)
    .option('--dir <dir>', 'directory to write the keys to', './pki')
    .option('--force', 'replace existing key files')
    .action(async (o: AuditKeygenCliOptions) => setExit(await runAuditKeygen(o, io)));
  return audit;
}

