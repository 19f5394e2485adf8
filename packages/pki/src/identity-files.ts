import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PkiError } from './errors.js';
import { existingFiles, writeFileAtomic } from '@switchboard/common';
import { TrustBundle } from './trust-bundle.js';
import { X509Svid } from './x509-svid.js';

/** IDENTITY_FILES names the files of an identity directory, in the layout spiffe-helper uses. */
export const IDENTITY_FILES = Object.freeze({
  certificates: 'svid.pem',
  privateKey: 'svid_key.pem',
  bundle: 'bundle.pem',
});

/** Identity is a workload's X509-SVID with the trust bundle it validates peers against. */
export interface Identity {
  readonly svid: X509Svid;
  readonly bundle: TrustBundle;
}

/**
 * writeIdentityFiles writes `svid.pem` (leaf first, then intermediates), `svid_key.pem` (0600) and
 * `bundle.pem` into `dir`, each atomically. Refuses with `PKI_ERR_FILE_EXISTS` when any of them is
 * there, unless `force` is set.
 */
export async function writeIdentityFiles(dir: string, identity: Identity, options: { force?: boolean } = {}): Promise<void> {
  const paths = Object.values(IDENTITY_FILES).map((f) => join(dir, f));
  if (!options.force) {
    const found = await existingFiles(paths);
    if (found.length > 0) throw new PkiError('PKI_ERR_FILE_EXISTS', `identity: ${found[0]} already exists; use --force to replace it`);
  }
  await writeFileAtomic(join(dir, IDENTITY_FILES.privateKey), identity.svid.privateKeyPem(), { mode: 0o600 });
  await writeFileAtomic(join(dir, IDENTITY_FILES.certificates), identity.svid.certificatesPem(), { mode: 0o644 });
  await writeFileAtomic(join(dir, IDENTITY_FILES.bundle), identity.bundle.toPem(), { mode: 0o644 });
}

/**
 * loadIdentityFiles reads an identity directory. The bundle is taken to belong to the SVID's own
 * trust domain.
 */
export async function loadIdentityFiles(dir: string): Promise<Identity> {
  const read = async (name: string): Promise<string> => {
    try {
      return await readFile(join(dir, name), 'utf8');
    } catch (err) {
      throw new PkiError('PKI_ERR_SVID_MALFORMED', `identity: cannot read ${join(dir, name)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  };
  const svid = X509Svid.parse(await read(IDENTITY_FILES.certificates), await read(IDENTITY_FILES.privateKey));
  const bundle = TrustBundle.fromPem(svid.id.trustDomain, await read(IDENTITY_FILES.bundle));
  return { svid, bundle };
}
