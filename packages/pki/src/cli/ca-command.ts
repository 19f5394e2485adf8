import { Command } from 'commander';
import { resolve } from 'node:path';
import { CA_FILES, CertificateAuthority } from '../ca.js';
import { TrustDomain } from '../spiffe-id.js';
import { reportError, type CliIo } from '@switchboard/common/cli';
import { PKI_REPORT } from './io.js';

/** CaInitOptions are the flags of `switchboard ca init`. */
export interface CaInitOptions {
  trustDomain: string;
  dir: string;
  force?: boolean;
}

/**
 * runCaInit creates a root CA, an intermediate signing CA and the JWT-SVID and enrollment keys in
 * `dir`. Returns the exit code.
 */
export async function runCaInit(opts: CaInitOptions, io: CliIo): Promise<number> {
  try {
    const td = TrustDomain.parse(opts.trustDomain);
    const ca = await CertificateAuthority.create({ trustDomain: td });
    const dir = resolve(opts.dir);
    await ca.save(dir, { force: opts.force === true });
    io.stdout.write(
      [
        `Created CA for trust domain ${td.name} in ${dir}`,
        `  root         ${CA_FILES.root} (valid until ${new Date(ca.rootCertificate.validTo).toISOString()})`,
        `  intermediate ${CA_FILES.intermediate} (signs every X509-SVID)`,
        `  trust bundle ${CA_FILES.bundle}, ${CA_FILES.bundleJwks}`,
        `  keys         ${CA_FILES.rootKey}, ${CA_FILES.intermediateKey}, ${CA_FILES.jwtKey}, ${CA_FILES.enrollmentKey}, ${CA_FILES.auditKey} (mode 0600)`,
        `  audit key    ${CA_FILES.auditPublicKey} (verifies the relay's signed audit checkpoints)`,
        `  root SHA-256 ${ca.rootCertificate.fingerprint256}`,
        '',
      ].join('\n'),
    );
    return 0;
  } catch (err) {
    return reportError(err, io, PKI_REPORT);
  }
}

/** caCommand builds `switchboard ca`. */
export function caCommand(io: CliIo, setExit: (code: number) => void): Command {
  const ca = new Command('ca').description('manage the certificate authority of a trust domain');
  ca.command('init')
    .description('create a root CA and an intermediate signing CA (ECDSA P-256)')
    .requiredOption('--trust-domain <name>', 'trust domain, e.g. example.org')
    .option('--dir <dir>', 'directory to write the CA to', './pki')
    .option('--force', 'replace an existing CA (every identity it issued stops being trusted)')
    .action(async (o: CaInitOptions) => setExit(await runCaInit(o, io)));
  return ca;
}
