import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { reportError, UsageError, type CliIo } from '@switchboard/common/cli';
import { join } from 'node:path';
import { existingFiles } from '@switchboard/common';
import { IDENTITY_FILES, TrustBundle, enrollmentTokenSubject, isPkiError, writeIdentityFiles } from '@switchboard/pki';
import { enrollWithRelay } from '@switchboard/protocol';

/** EnrollOptions are the flags of `switchboard enroll`. */
export interface EnrollOptions {
  /** relay is the enrollment listener, `https://host:port` (a `wss://` URL is taken as `https://`). */
  relay: string;
  /** token is a file holding the enrollment token, or `-` for stdin. */
  token: string;
  /** bundle is the trust domain's bundle.pem (to authenticate the relay before it has an SVID of ours). */
  bundle: string;
  out: string;
  relayId?: string;
  force?: boolean;
}

/**
 * runEnroll is `switchboard enroll`: the first identity of a new workload host, with the key made
 * here and never sent anywhere. Reads the token, makes a key and a CSR for the token's SPIFFE ID,
 * exchanges them at the relay's enrollment listener (authenticated against `--bundle` and the relay
 * rule), and writes svid.pem, svid_key.pem (0600) and bundle.pem. A refused enrollment writes
 * nothing. Exit 0, 1 (refused or unreachable: `code: message`), 2 (usage).
 */
export async function runEnroll(opts: EnrollOptions, io: CliIo, stdin: NodeJS.ReadableStream = process.stdin): Promise<number> {
  try {
    const out = resolve(opts.out);
    if (!opts.force) {
      const found = await existingFiles(Object.values(IDENTITY_FILES).map((f) => join(out, f)));
      if (found.length > 0) throw new UsageError('ERR_USAGE', `${found[0]} already exists; use --force to replace it`);
    }
    const token = (opts.token === '-' ? await readAll(stdin) : await readText(opts.token, '--token')).trim();
    const id = enrollmentTokenSubject(token);
    const bundle = TrustBundle.fromPem(id.trustDomain, await readText(opts.bundle, '--bundle'));
    const url = opts.relay.replace(/^wss:/, 'https:');
    const identity = await enrollWithRelay(url, token, id, bundle, opts.relayId === undefined ? {} : { relayId: opts.relayId });
    await writeIdentityFiles(out, identity, { force: true });
    io.stdout.write(`enrolled ${id.toString()}: ${out}/${IDENTITY_FILES.certificates} (expires ${new Date(Date.parse(identity.svid.leaf.validTo)).toISOString()})\n`);
    return 0;
  } catch (err) {
    return reportError(err, io, { invalidInput: (e) => e instanceof TypeError || isPkiError(e, 'PKI_ERR_TOKEN_INVALID'), fallbackCode: 'ENROLL_ERR_RUNTIME' });
  }
}

async function readText(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError('ERR_USAGE', `${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(parts).toString('utf8');
}

/** enrollCommand builds `switchboard enroll`. */
export function enrollCommand(io: CliIo, setExit: (code: number) => void): Command {
  return new Command('enroll')
    .description("get this host's first identity from a relay's enrollment listener with a single-use token (the key is made here)")
    .requiredOption('--relay <url>', 'enrollment listener, https://host:port')
    .requiredOption('--token <file|->', 'file with the enrollment token (`switchboard identity token`), or - for stdin')
    .requiredOption('--bundle <file>', "the trust domain's bundle.pem, to authenticate the relay")
    .requiredOption('--out <dir>', 'directory to write svid.pem, svid_key.pem and bundle.pem to')
    .option('--relay-id <spiffe-id>', 'SPIFFE ID (or pattern) the relay must present (default: spiffe://<trust domain>/relay/*)')
    .option('--force', 'replace existing identity files')
    .action(async (o: EnrollOptions) => setExit(await runEnroll(o, io)));
}
