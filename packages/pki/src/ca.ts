import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PkiError } from './errors.js';
import { buildCertificate } from './internal/cert-builder.js';
import { SvidIssuer, type IssueOptions } from './issuer.js';
import { parsePrivateKeyPem, privateKeyPem, publicKeyOf, x509 } from './internal/crypto.js';
import { existingFiles, writeFileAtomic } from '@switchboard/common';
import { SpiffeId, TrustDomain } from './spiffe-id.js';
import { TrustBundle } from './trust-bundle.js';
import { SVID_BACKDATE_SECONDS, X509Svid } from './x509-svid.js';

/** CA_FILES names the files of a CA directory made by `switchboard ca init`. */
export const CA_FILES = Object.freeze({
  meta: 'ca.json',
  root: 'root.pem',
  rootKey: 'root_key.pem',
  intermediate: 'intermediate.pem',
  intermediateKey: 'intermediate_key.pem',
  jwtKey: 'jwt_key.pem',
  enrollmentKey: 'enrollment_key.pem',
  auditKey: 'audit_key.pem',
  auditPublicKey: 'audit_pub.pem',
  bundle: 'bundle.pem',
  bundleJwks: 'bundle.jwks.json',
});

const DAY = 86400;
const ROOT_TTL_SECONDS = 10 * 365 * DAY;
const INTERMEDIATE_TTL_SECONDS = 365 * DAY;

/** CaCreateOptions configure a new CA. */
export interface CaCreateOptions {
  trustDomain: TrustDomain | string;
  now?: Date;
  rootTtlSeconds?: number;
  intermediateTtlSeconds?: number;
}

/** IssueOptions configure one X509-SVID. */
export type { IssueOptions } from './issuer.js';

/** newP256Key makes an ECDSA P-256 key pair. */
export function newP256Key(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

/** newEd25519Key makes an Ed25519 key pair (audit checkpoint signatures). */
export function newEd25519Key(): KeyObject {
  return generateKeyPairSync('ed25519').privateKey;
}

/** jwtKeyId derives the `kid` of a JWT-SVID signing key: a thumbprint of its public key. */
export function jwtKeyId(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64url').slice(0, 32);
}

// The SvidIssuer each CA signs through, made at first use.
const issuers = new WeakMap<CertificateAuthority, SvidIssuer>();

/**
 * CertificateAuthority is a trust domain's signing authority: a self-signed root CA, an
 * intermediate CA that signs every X509-SVID, and a key that signs JWT-SVIDs. The root's
 * certificate is the trust bundle.
 *
 * @example
 * const ca = await CertificateAuthority.create({ trustDomain: 'example.org' });
 * const svid = await ca.issueX509Svid(SpiffeId.parse('spiffe://example.org/agent/support'));
 */
export class CertificateAuthority {
  readonly trustDomain: TrustDomain;
  readonly rootCertificate: X509Certificate;
  readonly intermediateCertificate: X509Certificate;
  readonly jwtKeyId: string;
  private readonly rootKey: KeyObject;
  private readonly intermediateKey: KeyObject;
  private readonly jwtKey: KeyObject;
  private readonly enrollmentKey: KeyObject;
  private readonly auditKey: KeyObject;

  private constructor(init: {
    trustDomain: TrustDomain;
    root: X509Certificate;
    rootKey: KeyObject;
    intermediate: X509Certificate;
    intermediateKey: KeyObject;
    jwtKey: KeyObject;
    enrollmentKey: KeyObject;
    auditKey: KeyObject;
  }) {
    this.trustDomain = init.trustDomain;
    this.rootCertificate = init.root;
    this.rootKey = init.rootKey;
    this.intermediateCertificate = init.intermediate;
    this.intermediateKey = init.intermediateKey;
    this.jwtKey = init.jwtKey;
    this.enrollmentKey = init.enrollmentKey;
    this.auditKey = init.auditKey;
    this.jwtKeyId = jwtKeyId(publicKeyOf(init.jwtKey));
  }

  /** CertificateAuthority.create makes a new root, intermediate and JWT key in memory. */
  static async create(options: CaCreateOptions): Promise<CertificateAuthority> {
    const td = typeof options.trustDomain === 'string' ? TrustDomain.parse(options.trustDomain) : options.trustDomain;
    const now = options.now ?? new Date();
    const notBefore = new Date(now.getTime() - SVID_BACKDATE_SECONDS * 1000);
    const rootKey = newP256Key();
    const root = await buildCertificate(
      {
        subject: `CN=Switchboard Root CA ${td.name}, O=Switchboard`,
        publicKey: publicKeyOf(rootKey),
        notBefore,
        notAfter: new Date(now.getTime() + (options.rootTtlSeconds ?? ROOT_TTL_SECONDS) * 1000),
        uris: [td.idString()],
        basicConstraints: { ca: true, pathLength: 1 },
        keyUsage: { flags: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, critical: true },
      },
      { selfSignKey: rootKey },
    );
    const intermediateKey = newP256Key();
    const intermediate = await buildCertificate(
      {
        subject: `CN=Switchboard Intermediate CA ${td.name}, O=Switchboard`,
        publicKey: publicKeyOf(intermediateKey),
        notBefore,
        notAfter: new Date(now.getTime() + (options.intermediateTtlSeconds ?? INTERMEDIATE_TTL_SECONDS) * 1000),
        uris: [td.idString()],
        basicConstraints: { ca: true, pathLength: 0 },
        keyUsage: { flags: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, critical: true },
      },
      { certificate: root, privateKey: rootKey },
    );
    return new CertificateAuthority({ trustDomain: td, root, rootKey, intermediate, intermediateKey, jwtKey: newP256Key(), enrollmentKey: newP256Key(), auditKey: newEd25519Key() });
  }

  /**
   * CertificateAuthority.load reads a CA directory written by {@link CertificateAuthority.save}.
   * Throws `PKI_ERR_CA_UNREADABLE` when a file is missing or unreadable and
   * `PKI_ERR_CA_KEY_MISMATCH` when a key does not belong to its certificate.
   */
  static async load(dir: string): Promise<CertificateAuthority> {
    const read = async (name: string): Promise<string> => {
      try {
        return await readFile(join(dir, name), 'utf8');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // A directory that holds no CA at all: say how to make one.
        const hint = code === 'ENOENT' && name === CA_FILES.meta ? `; is ${dir} a CA directory? Create one with \`switchboard ca init --trust-domain <td> --dir ${dir}\`` : '';
        throw new PkiError('PKI_ERR_CA_UNREADABLE', `ca: cannot read ${join(dir, name)}: ${code ?? (err as Error).message}${hint}`, { cause: err });
      }
    };
    const meta = await read(CA_FILES.meta);
    let td: TrustDomain;
    try {
      const parsed = JSON.parse(meta) as { trustDomain?: unknown };
      if (typeof parsed.trustDomain !== 'string') throw new TypeError('trustDomain missing');
      td = TrustDomain.parse(parsed.trustDomain);
    } catch (err) {
      throw new PkiError('PKI_ERR_CA_UNREADABLE', `ca: ${join(dir, CA_FILES.meta)} is not a valid CA description`, { cause: err });
    }
    const cert = (name: string, pem: string): X509Certificate => {
      try {
        return new X509Certificate(pem);
      } catch (err) {
        throw new PkiError('PKI_ERR_CA_UNREADABLE', `ca: ${join(dir, name)} is not a PEM certificate`, { cause: err });
      }
    };
    const key = (name: string, pem: string): KeyObject => {
      try {
        return parsePrivateKeyPem(pem);
      } catch (err) {
        throw new PkiError('PKI_ERR_CA_UNREADABLE', `ca: ${join(dir, name)} is not an ECDSA P-256 private key`, { cause: err });
      }
    };
    const root = cert(CA_FILES.root, await read(CA_FILES.root));
    const rootKey = key(CA_FILES.rootKey, await read(CA_FILES.rootKey));
    const intermediate = cert(CA_FILES.intermediate, await read(CA_FILES.intermediate));
    const intermediateKey = key(CA_FILES.intermediateKey, await read(CA_FILES.intermediateKey));
    const jwtKey = key(CA_FILES.jwtKey, await read(CA_FILES.jwtKey));
    const enrollmentKey = key(CA_FILES.enrollmentKey, await read(CA_FILES.enrollmentKey));
    let auditKey: KeyObject;
    try {
      auditKey = createPrivateKey(await read(CA_FILES.auditKey));
      if (auditKey.asymmetricKeyType !== 'ed25519') throw new TypeError('not Ed25519');
    } catch (err) {
      if (err instanceof PkiError) throw err;
      throw new PkiError('PKI_ERR_CA_UNREADABLE', `ca: ${join(dir, CA_FILES.auditKey)} is not an Ed25519 private key`, { cause: err });
    }
    if (!root.checkPrivateKey(rootKey)) {
      throw new PkiError('PKI_ERR_CA_KEY_MISMATCH', `ca: ${join(dir, CA_FILES.rootKey)} does not belong to ${CA_FILES.root}`);
    }
    if (!intermediate.checkPrivateKey(intermediateKey)) {
      throw new PkiError('PKI_ERR_CA_KEY_MISMATCH', `ca: ${join(dir, CA_FILES.intermediateKey)} does not belong to ${CA_FILES.intermediate}`);
    }
    if (!intermediate.verify(root.publicKey)) {
      throw new PkiError('PKI_ERR_CA_KEY_MISMATCH', `ca: ${CA_FILES.intermediate} is not signed by ${CA_FILES.root}`);
    }
    return new CertificateAuthority({ trustDomain: td, root, rootKey, intermediate, intermediateKey, jwtKey, enrollmentKey, auditKey });
  }

  /**
   * save writes the CA to `dir`: certificates 0644, keys 0600, `bundle.pem` and `bundle.jwks.json`.
   * Refuses (`PKI_ERR_CA_EXISTS`) when a CA is already there, unless `force` is set.
   */
  async save(dir: string, options: { force?: boolean } = {}): Promise<void> {
    const paths = Object.values(CA_FILES).map((f) => join(dir, f));
    if (!options.force) {
      const found = await existingFiles(paths);
      if (found.length > 0) {
        throw new PkiError('PKI_ERR_CA_EXISTS', `ca: ${found[0]} already exists; use --force to replace the CA (every identity it issued stops being trusted)`);
      }
    }
    const bundle = this.bundle();
    await writeFileAtomic(join(dir, CA_FILES.rootKey), privateKeyPem(this.rootKey), { mode: 0o600 });
    await writeFileAtomic(join(dir, CA_FILES.intermediateKey), privateKeyPem(this.intermediateKey), { mode: 0o600 });
    await writeFileAtomic(join(dir, CA_FILES.jwtKey), privateKeyPem(this.jwtKey), { mode: 0o600 });
    await writeFileAtomic(join(dir, CA_FILES.enrollmentKey), privateKeyPem(this.enrollmentKey), { mode: 0o600 });
    await writeFileAtomic(join(dir, CA_FILES.auditKey), privateKeyPem(this.auditKey), { mode: 0o600 });
    await writeFileAtomic(join(dir, CA_FILES.auditPublicKey), this.auditPublicKeyPem(), { mode: 0o644 });
    await writeFileAtomic(join(dir, CA_FILES.root), this.rootCertificate.toString(), { mode: 0o644 });
    await writeFileAtomic(join(dir, CA_FILES.intermediate), this.intermediateCertificate.toString(), { mode: 0o644 });
    await writeFileAtomic(join(dir, CA_FILES.bundle), bundle.toPem(), { mode: 0o644 });
    await writeFileAtomic(join(dir, CA_FILES.bundleJwks), bundle.toJwks({ sequenceNumber: 1 }), { mode: 0o644 });
    await writeFileAtomic(join(dir, CA_FILES.meta), `${JSON.stringify({ trustDomain: this.trustDomain.name, jwtKeyId: this.jwtKeyId }, null, 2)}\n`, { mode: 0o644 });
  }

  /**
   * auditPublicKeyPem is the SPKI PEM of the Ed25519 key that signs audit checkpoints, for
   * verifiers (`switchboard audit verify --key audit_pub.pem`).
   */
  auditPublicKeyPem(): string {
    return createPublicKey(this.auditKey).export({ type: 'spki', format: 'pem' }) as string;
  }

  /** auditSigningKeyPem is the PKCS#8 PEM of the audit checkpoint signing key (give it to relays). */
  auditSigningKeyPem(): string {
    return privateKeyPem(this.auditKey);
  }

  /** bundle is the trust bundle relying parties use: the root certificate and the JWT-SVID key. */
  bundle(): TrustBundle {
    return new TrustBundle({
      trustDomain: this.trustDomain,
      x509Authorities: [this.rootCertificate],
      jwtAuthorities: [{ keyId: this.jwtKeyId, publicKey: publicKeyOf(this.jwtKey) }],
    });
  }

  /** jwtSigner returns the JWT-SVID signing key and its `kid`. */
  jwtSigner(): { keyId: string; privateKey: KeyObject } {
    return { keyId: this.jwtKeyId, privateKey: this.jwtKey };
  }

  /**
   * enrollmentSigner returns the key that signs enrollment tokens. It is a key of its own, so an
   * enrollment token can never pass as a JWT-SVID or the other way round.
   */
  enrollmentSigner(): { keyId: string; privateKey: KeyObject; publicKey: KeyObject } {
    const publicKey = publicKeyOf(this.enrollmentKey);
    return { keyId: jwtKeyId(publicKey), privateKey: this.enrollmentKey, publicKey };
  }

  /** checkId throws unless `id` can be issued here: in this trust domain, with a non-root path. */
  checkId(id: SpiffeId): void {
    this.signer().checkId(id);
  }

  /**
   * signX509Svid certifies `publicKey` as `id` and returns the chain (leaf, intermediate). The
   * CA alone decides the certificate's content.
   */
  signX509Svid(id: SpiffeId, publicKey: KeyObject, options: IssueOptions = {}): Promise<X509Certificate[]> {
    return this.signer().sign(id, publicKey, options);
  }

  /** issuer is the intermediate as an {@link SvidIssuer}: what a relay holds to renew SVIDs (no root key). */
  issuer(): SvidIssuer {
    return this.signer();
  }

  /** issueX509Svid makes a fresh P-256 key and certifies it as `id`. */
  async issueX509Svid(id: SpiffeId | string, options: IssueOptions = {}): Promise<X509Svid> {
    const sid = typeof id === 'string' ? SpiffeId.parse(id) : id;
    const key = newP256Key();
    const chain = await this.signX509Svid(sid, publicKeyOf(key), options);
    return new X509Svid(sid, chain, key);
  }

  private signer(): SvidIssuer {
    let issuer = issuers.get(this);
    if (issuer === undefined) {
      issuer = new SvidIssuer({ certificate: this.intermediateCertificate, privateKey: this.intermediateKey, bundle: this.bundle() });
      issuers.set(this, issuer);
    }
    return issuer;
  }
}

export { leafSpec } from './issuer.js';
