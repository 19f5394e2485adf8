import { X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PkiError } from './errors.js';
import { buildCertificate } from './internal/cert-builder.js';
import { parsePrivateKeyPem, x509 } from './internal/crypto.js';
import { SpiffeId, TrustDomain } from './spiffe-id.js';
import { TrustBundle } from './trust-bundle.js';
import { DEFAULT_SVID_TTL_SECONDS, MAX_SVID_TTL_SECONDS, SVID_BACKDATE_SECONDS } from './x509-svid.js';

/** ISSUER_FILES names what an issuer directory holds: the files of a CA directory a relay needs to sign SVIDs, and no more. */
export const ISSUER_FILES = Object.freeze({
  intermediate: 'intermediate.pem',
  intermediateKey: 'intermediate_key.pem',
  bundle: 'bundle.pem',
});

/** IssueOptions tune the SVIDs an issuer signs. */
export interface IssueOptions {
  /** ttlSeconds is the SVID lifetime (default 1 h, at most 24 h). */
  ttlSeconds?: number;
  now?: Date;
}

/**
 * SvidIssuer signs X509-SVIDs with an intermediate CA: the part of a CA that may live on a relay
 * to renew workload identities. It holds no root key, so a relay that is compromised can sign
 * SVIDs until its intermediate expires or is removed from the bundle's chain, but cannot mint a new
 * CA. {@link CertificateAuthority} signs through one too.
 *
 * @example
 * const issuer = await SvidIssuer.load('/etc/switchboard/issuer'); // intermediate.pem, intermediate_key.pem, bundle.pem
 * const chain = await issuer.sign(SpiffeId.parse('spiffe://example.org/connector/crm'), publicKey, { ttlSeconds: 3600 });
 */
export class SvidIssuer {
  readonly trustDomain: TrustDomain;
  readonly certificate: X509Certificate;
  /** bundle is the trust bundle handed out with each SVID (the roots the intermediate chains to). */
  readonly bundle: TrustBundle;
  private readonly privateKey: KeyObject;

  constructor(init: { certificate: X509Certificate; privateKey: KeyObject; bundle: TrustBundle }) {
    const td = init.bundle.trustDomain;
    if (!init.certificate.checkPrivateKey(init.privateKey)) {
      throw new PkiError('PKI_ERR_CA_KEY_MISMATCH', 'issuer: the private key does not belong to the intermediate certificate');
    }
    if (!init.certificate.ca) throw new PkiError('PKI_ERR_CA_UNREADABLE', 'issuer: the intermediate certificate is not a CA certificate');
    if (!init.bundle.x509Authorities.some((root) => init.certificate.checkIssued(root) && init.certificate.verify(root.publicKey))) {
      throw new PkiError('PKI_ERR_CA_KEY_MISMATCH', `issuer: the intermediate certificate is not signed by a root of the bundle of ${td.name}`);
    }
    this.trustDomain = td;
    this.certificate = init.certificate;
    this.privateKey = init.privateKey;
    this.bundle = init.bundle;
  }

  /**
   * SvidIssuer.load reads an issuer directory ({@link ISSUER_FILES}: copy them from the CA
   * directory; the root key stays behind). The trust domain is the intermediate's SPIFFE ID.
   * Throws `PKI_ERR_CA_UNREADABLE` or `PKI_ERR_CA_KEY_MISMATCH` naming the file.
   */
  static async load(dir: string): Promise<SvidIssuer> {
    const read = async (name: string): Promise<string> => {
      try {
        return await readFile(join(dir, name), 'utf8');
      } catch (err) {
        throw new PkiError('PKI_ERR_CA_UNREADABLE', `issuer: cannot read ${join(dir, name)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
      }
    };
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(await read(ISSUER_FILES.intermediate));
    } catch (err) {
      if (err instanceof PkiError) throw err;
      throw new PkiError('PKI_ERR_CA_UNREADABLE', `issuer: ${join(dir, ISSUER_FILES.intermediate)} is not a PEM certificate`, { cause: err });
    }
    const td = trustDomainOf(certificate, join(dir, ISSUER_FILES.intermediate));
    let privateKey: KeyObject;
    try {
      privateKey = parsePrivateKeyPem(await read(ISSUER_FILES.intermediateKey));
    } catch (err) {
      if (err instanceof PkiError) throw err;
      throw new PkiError('PKI_ERR_CA_UNREADABLE', `issuer: ${join(dir, ISSUER_FILES.intermediateKey)} is not an ECDSA P-256 private key`, { cause: err });
    }
    let bundle: TrustBundle;
    try {
      bundle = TrustBundle.fromPem(td, await read(ISSUER_FILES.bundle));
    } catch (err) {
      if (err instanceof PkiError && err.code === 'PKI_ERR_CA_UNREADABLE') throw err;
      throw new PkiError('PKI_ERR_CA_UNREADABLE', `issuer: ${join(dir, ISSUER_FILES.bundle)} is not a PEM bundle`, { cause: err });
    }
    return new SvidIssuer({ certificate, privateKey, bundle });
  }

  /** checkId throws unless `id` can be issued here: in this trust domain, with a non-root path. */
  checkId(id: SpiffeId): void {
    if (!id.memberOf(this.trustDomain)) {
      throw new PkiError('PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN', `ca: ${id.toString()} is outside this CA's trust domain "${this.trustDomain.name}"`);
    }
    if (id.isRoot) throw new PkiError('PKI_ERR_SVID_ROOT_PATH', 'ca: an identity must name a workload (a SPIFFE ID with a non-root path)');
  }

  /**
   * sign certifies `publicKey` (ECDSA P-256) as `id` and returns the chain (leaf, intermediate).
   * The issuer alone decides the certificate's content; its lifetime ends no later than the
   * intermediate's.
   */
  async sign(id: SpiffeId, publicKey: KeyObject, options: IssueOptions = {}): Promise<X509Certificate[]> {
    this.checkId(id);
    const ttl = options.ttlSeconds ?? DEFAULT_SVID_TTL_SECONDS;
    if (!Number.isFinite(ttl) || ttl <= 0) throw new PkiError('PKI_ERR_SVID_TTL_TOO_LONG', 'ca: TTL must be a positive number of seconds');
    if (ttl > MAX_SVID_TTL_SECONDS) {
      throw new PkiError('PKI_ERR_SVID_TTL_TOO_LONG', `ca: TTL ${ttl}s is over the maximum of ${MAX_SVID_TTL_SECONDS}s (24h)`);
    }
    if (publicKey.asymmetricKeyType !== 'ec' || publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new PkiError('PKI_ERR_CSR_KEY_UNSUPPORTED', 'ca: only ECDSA P-256 keys are certified');
    }
    const now = options.now ?? new Date();
    const notAfterMs = Math.min(now.getTime() + ttl * 1000, Date.parse(this.certificate.validTo));
    if (notAfterMs <= now.getTime()) throw new PkiError('PKI_ERR_SVID_EXPIRED', `ca: the intermediate certificate expired at ${new Date(Date.parse(this.certificate.validTo)).toISOString()}`);
    const leaf = await buildCertificate(leafSpec(id, publicKey, new Date(now.getTime() - SVID_BACKDATE_SECONDS * 1000), new Date(notAfterMs)), {
      certificate: this.certificate,
      privateKey: this.privateKey,
    });
    return [leaf, this.certificate];
  }
}

function trustDomainOf(cert: X509Certificate, file: string): TrustDomain {
  const uris = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('URI:'))
    .map((n) => n.slice(4));
  const id = uris.length === 1 ? SpiffeIdOrUndefined(uris[0] as string) : undefined;
  if (id === undefined) throw new PkiError('PKI_ERR_CA_UNREADABLE', `issuer: ${file} carries no single spiffe:// URI naming its trust domain`);
  return id.trustDomain;
}

function SpiffeIdOrUndefined(text: string): SpiffeId | undefined {
  try {
    return SpiffeId.parse(text);
  } catch {
    return undefined;
  }
}

/** leafSpec is the certificate content of an X509-SVID as the spec wants it. */
export function leafSpec(id: SpiffeId, publicKey: KeyObject, notBefore: Date, notAfter: Date) {
  const last = id.path.slice(id.path.lastIndexOf('/') + 1);
  return {
    subject: `CN=${last}, O=Switchboard`,
    publicKey,
    notBefore,
    notAfter,
    uris: [id.toString()],
    basicConstraints: { ca: false },
    keyUsage: { flags: x509.KeyUsageFlags.digitalSignature, critical: true },
    eku: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
  };
}
