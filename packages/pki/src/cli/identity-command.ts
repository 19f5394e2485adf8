import { Command } from 'commander';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CertificateAuthority } from '../ca.js';
import { issueEnrollmentToken } from '../enrollment-token.js';
import { PkiError } from '../errors.js';
import { IDENTITY_FILES, writeIdentityFiles } from '../identity-files.js';
import { existingFiles } from '@switchboard/common';
import { readCertExtensions, KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN } from '../internal/cert-extensions.js';
import { exportPkcs12 } from '../pkcs12.js';
import { SpiffeId } from '../spiffe-id.js';
import { BundleSet, parseCertificatesPem, TrustBundle } from '../trust-bundle.js';
import { checkLeaf, MAX_SVID_TTL_SECONDS, validateX509Svid } from '../x509-svid.js';
import { reportError, UsageError, type CliIo } from '@switchboard/common/cli';
import { parseDuration, PKI_REPORT } from './io.js';

/** P12_PASSWORD_ENV is the environment variable `identity issue --p12` reads the passphrase from. */
export const P12_PASSWORD_ENV = 'SWITCHBOARD_P12_PASSWORD';
const P12_FILE = 'svid.p12';

/** IdentityIssueOptions are the flags of `switchboard identity issue`. */
export interface IdentityIssueOptions {
  id: string;
  caDir: string;
  out: string;
  ttl?: string;
  p12?: boolean;
  force?: boolean;
}

/**
 * runIdentityIssue issues an X509-SVID for `id` and writes `svid.pem`, `svid_key.pem` (0600) and
 * `bundle.pem` (and `svid.p12` with `--p12`). Every input is checked before anything is written.
 */
export async function runIdentityIssue(opts: IdentityIssueOptions, io: CliIo): Promise<number> {
  try {
    const id = SpiffeId.parse(opts.id);
    const ttlSeconds = opts.ttl === undefined ? undefined : parseDuration(opts.ttl, '--ttl');
    if (ttlSeconds !== undefined && ttlSeconds > MAX_SVID_TTL_SECONDS) {
      throw new PkiError('PKI_ERR_SVID_TTL_TOO_LONG', `identity: --ttl ${opts.ttl} is over the maximum of 24h`);
    }
    const out = resolve(opts.out);
    const outputs = [...Object.values(IDENTITY_FILES), ...(opts.p12 ? [P12_FILE] : [])].map((f) => join(out, f));
    if (!opts.force) {
      const found = await existingFiles(outputs);
      if (found.length > 0) throw new PkiError('PKI_ERR_FILE_EXISTS', `identity: ${found[0]} already exists; use --force to replace it`);
    }
    const ca = await CertificateAuthority.load(resolve(opts.caDir));
    ca.checkId(id);
    let password: string | undefined;
    if (opts.p12) password = await p12Password(io);
    const svid = await ca.issueX509Svid(id, ttlSeconds === undefined ? {} : { ttlSeconds });
    const bundle = ca.bundle();
    await writeIdentityFiles(out, { svid, bundle }, { force: true });
    if (password !== undefined) {
      await writeFile(join(out, P12_FILE), exportPkcs12(svid, bundle, password), { mode: 0o600 });
    }
    io.stdout.write(
      [
        `Issued ${id.toString()}`,
        `  expires  ${svid.expiresAt.toISOString()}`,
        `  serial   ${svid.leaf.serialNumber}`,
        `  files    ${outputs.join(', ')}`,
        '',
      ].join('\n'),
    );
    return 0;
  } catch (err) {
    return reportError(err, io, PKI_REPORT);
  }
}

async function p12Password(io: CliIo): Promise<string> {
  const fromEnv = io.env?.[P12_PASSWORD_ENV];
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  if (!io.promptSecret) {
    throw new PkiError('PKI_ERR_P12_PASSWORD_MISSING', `identity: --p12 needs a passphrase: set ${P12_PASSWORD_ENV} or run on a terminal`);
  }
  const first = await io.promptSecret('PKCS#12 passphrase: ');
  const again = await io.promptSecret('Repeat passphrase: ');
  if (first.length === 0) throw new PkiError('PKI_ERR_P12_PASSWORD_MISSING', 'identity: the passphrase must not be empty');
  if (first !== again) throw new UsageError('ERR_PASSPHRASE_MISMATCH', 'identity: the two passphrases differ');
  return first;
}

/** IdentityReport is what `identity inspect --json` prints. */
export interface IdentityReport {
  spiffeId: string | null;
  serial: string;
  subject: string;
  issuer: string;
  notBefore: string;
  notAfter: string;
  remainingSeconds: number;
  keyUsage: string[];
  extendedKeyUsage: string[] | null;
  uris: string[];
  chainLength: number;
  sha256: string;
  /** validation against `bundle.pem` beside the file, when there is one. */
  validation: { bundle: string; valid: boolean; code?: string; message?: string } | null;
  /** svidRules: whether the leaf keeps the X509-SVID leaf rules, else the first rule broken. */
  svidRules: { ok: boolean; code?: string; message?: string };
}

const EKU_NAMES: Record<string, string> = { '1.3.6.1.5.5.7.3.1': 'serverAuth', '1.3.6.1.5.5.7.3.2': 'clientAuth' };

/** inspectIdentity describes the SVID in `svidPem` and validates it against `bundlePem` if given. */
export function inspectIdentity(svidPem: string, bundlePem: string | undefined, bundlePath: string, now = new Date()): IdentityReport {
  const chain = parseCertificatesPem(svidPem, 'identity', 'PKI_ERR_SVID_MALFORMED');
  const leaf = chain[0] as X509Certificate;
  const ext = readCertExtensions(leaf.raw);
  const ku: string[] = [];
  if (ext.keyUsage !== undefined) {
    if (ext.keyUsage & KU_DIGITAL_SIGNATURE) ku.push('digitalSignature');
    if (ext.keyUsage & KU_KEY_CERT_SIGN) ku.push('keyCertSign');
    if (ext.keyUsage & KU_CRL_SIGN) ku.push('cRLSign');
    if (ext.keyUsageCritical) ku.push('(critical)');
  }
  let spiffeId: string | null = null;
  let svidRules: IdentityReport['svidRules'] = { ok: true };
  try {
    spiffeId = checkLeaf(leaf).toString();
  } catch (err) {
    svidRules = { ok: false, code: (err as PkiError).code, message: (err as Error).message };
    spiffeId = ext.uris.length === 1 ? (ext.uris[0] as string) : null;
  }
  let validation: IdentityReport['validation'] = null;
  if (bundlePem !== undefined && spiffeId !== null && svidRules.ok) {
    try {
      const td = SpiffeId.parse(spiffeId).trustDomain;
      validateX509Svid(chain, new BundleSet([TrustBundle.fromPem(td, bundlePem)]), { now });
      validation = { bundle: bundlePath, valid: true };
    } catch (err) {
      validation = { bundle: bundlePath, valid: false, code: (err as PkiError).code, message: (err as Error).message };
    }
  }
  return {
    spiffeId,
    serial: leaf.serialNumber,
    subject: leaf.subject.replace(/\n/g, ', '),
    issuer: leaf.issuer.replace(/\n/g, ', '),
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: new Date(leaf.validTo).toISOString(),
    remainingSeconds: Math.max(0, Math.floor((Date.parse(leaf.validTo) - now.getTime()) / 1000)),
    keyUsage: ku,
    extendedKeyUsage: ext.eku === undefined ? null : ext.eku.map((o) => EKU_NAMES[o] ?? o),
    uris: [...ext.uris],
    chainLength: chain.length,
    sha256: leaf.fingerprint256,
    validation,
    svidRules,
  };
}

/** runIdentityInspect prints what an `svid.pem` holds and whether it validates. */
export async function runIdentityInspect(opts: { file: string; json?: boolean; bundle?: string }, io: CliIo): Promise<number> {
  try {
    const file = resolve(opts.file);
    const pem = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new UsageError('ERR_FILE_UNREADABLE', `identity: cannot read ${file}: ${err.code ?? err.message}`);
    });
    const bundlePath = resolve(opts.bundle ?? join(dirname(file), IDENTITY_FILES.bundle));
    const bundlePem = await readFile(bundlePath, 'utf8').catch(() => undefined);
    const r = inspectIdentity(pem, bundlePem, bundlePath);
    if (opts.json) {
      io.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    } else {
      const h = Math.floor(r.remainingSeconds / 3600);
      const m = Math.floor((r.remainingSeconds % 3600) / 60);
      io.stdout.write(
        [
          `SPIFFE ID      ${r.spiffeId ?? '(none)'}`,
          `SVID rules     ${r.svidRules.ok ? 'ok' : `BROKEN ${r.svidRules.code}: ${r.svidRules.message}`}`,
          `valid          ${r.notBefore} → ${r.notAfter} (${r.remainingSeconds > 0 ? `${h}h${String(m).padStart(2, '0')}m left` : 'expired'})`,
          `serial         ${r.serial}`,
          `issuer         ${r.issuer}`,
          `key usage      ${r.keyUsage.join(' ') || '(none)'}`,
          `ext key usage  ${r.extendedKeyUsage?.join(' ') ?? '(none)'}`,
          `chain          ${r.chainLength} certificate(s)`,
          `sha256         ${r.sha256}`,
          `trust          ${r.validation === null ? 'no bundle.pem found' : r.validation.valid ? `valid against ${r.validation.bundle}` : `INVALID against ${r.validation.bundle}: ${r.validation.code}: ${r.validation.message}`}`,
          '',
        ].join('\n'),
      );
    }
    return r.svidRules.ok && (r.validation === null || r.validation.valid) ? 0 : 1;
  } catch (err) {
    return reportError(err, io, PKI_REPORT);
  }
}

/** runIdentityToken prints a single-use enrollment token bound to `id`. */
export async function runIdentityToken(opts: { id: string; caDir: string; ttl?: string }, io: CliIo): Promise<number> {
  try {
    const id = SpiffeId.parse(opts.id);
    const ttlSeconds = opts.ttl === undefined ? undefined : parseDuration(opts.ttl, '--ttl');
    const ca = await CertificateAuthority.load(resolve(opts.caDir));
    ca.checkId(id);
    const token = await issueEnrollmentToken(ca, id, ttlSeconds === undefined ? {} : { ttlSeconds });
    io.stdout.write(`${token}\n`);
    return 0;
  } catch (err) {
    return reportError(err, io, PKI_REPORT);
  }
}

/** identityCommand builds `switchboard identity`. */
export function identityCommand(io: CliIo, setExit: (code: number) => void): Command {
  const cmd = new Command('identity').description('issue and inspect workload identities (X509-SVIDs)');
  cmd
    .command('issue')
    .description('issue an X509-SVID: writes svid.pem, svid_key.pem (0600) and bundle.pem')
    .argument('<spiffe-id>', 'e.g. spiffe://example.org/agent/support')
    .option('--ca-dir <dir>', 'CA directory made by `ca init`', './pki')
    .requiredOption('--out <dir>', 'directory to write the identity to')
    .option('--ttl <duration>', 'lifetime, e.g. 15m, 1h (default: 1h, max 24h)')
    .option('--p12', `also write svid.p12 (passphrase from ${P12_PASSWORD_ENV} or a prompt)`)
    .option('--force', 'replace existing files')
    .action(async (id: string, o: Omit<IdentityIssueOptions, 'id'>) => setExit(await runIdentityIssue({ ...o, id }, io)));
  cmd
    .command('inspect')
    .description('show an SVID and validate it against the bundle.pem beside it')
    .argument('<svid.pem>')
    .option('--bundle <file>', 'trust bundle to validate against (default: bundle.pem beside the file)')
    .option('--json', 'machine-readable output')
    .action(async (file: string, o: { json?: boolean; bundle?: string }) => setExit(await runIdentityInspect({ ...o, file }, io)));
  cmd
    .command('token')
    .description('print a single-use enrollment token bound to one SPIFFE ID')
    .argument('<spiffe-id>')
    .option('--ca-dir <dir>', 'CA directory made by `ca init`', './pki')
    .option('--ttl <duration>', 'lifetime (default: 15m, max 1h)')
    .action(async (id: string, o: { caDir: string; ttl?: string }) => setExit(await runIdentityToken({ ...o, id }, io)));
  return cmd;
}
