import { X509Certificate, type KeyObject } from 'node:crypto';
import { PkiError, type PkiErrorCode } from './errors.js';
import {
  KU_CRL_SIGN,
  KU_DIGITAL_SIGNATURE,
  KU_KEY_CERT_SIGN,
  readCertExtensions,
  type CertExtensions,
} from './internal/cert-extensions.js';
import { parsePrivateKeyPem, privateKeyPem } from './internal/crypto.js';
import { SpiffeId } from './spiffe-id.js';
import { parseCertificatesPem, type BundleSource } from './trust-bundle.js';

/** DEFAULT_SVID_TTL_SECONDS is the lifetime of an X509-SVID when none is asked for: one hour. */
export const DEFAULT_SVID_TTL_SECONDS = 3600;
/** MAX_SVID_TTL_SECONDS is the longest lifetime the CA will issue: 24 hours. */
export const MAX_SVID_TTL_SECONDS = 24 * 3600;
/** SVID_BACKDATE_SECONDS moves `notBefore` back so a peer whose clock runs a little late accepts it. */
export const SVID_BACKDATE_SECONDS = 30;
/** DEFAULT_CLOCK_SKEW_SECONDS is the tolerance a validator allows on `notBefore` / `notAfter`. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;
/** MAX_CLOCK_SKEW_SECONDS bounds the tolerance a caller may configure. */
export const MAX_CLOCK_SKEW_SECONDS = 300;
const MAX_CHAIN_LENGTH = 8;
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/**
 * X509Svid is an X.509-SVID with its private key: the certificate chain (leaf first, then
 * intermediates) and the key the leaf certifies.
 */
export class X509Svid {
  readonly id: SpiffeId;
  readonly certificates: readonly X509Certificate[];
  readonly privateKey: KeyObject;

  constructor(id: SpiffeId, certificates: readonly X509Certificate[], privateKey: KeyObject) {
    if (certificates.length === 0) throw new TypeError('x509svid: a certificate chain needs a leaf');
    this.id = id;
    this.certificates = Object.freeze([...certificates]);
    this.privateKey = privateKey;
  }

  /**
   * X509Svid.parse reads `svid.pem` and `svid_key.pem` contents, checks the leaf against the SVID
   * rules and that the key belongs to the leaf. It does not check trust; use
   * {@link validateX509Svid} for that.
   */
  static parse(certsPem: string | Buffer, keyPem: string | Buffer): X509Svid {
    const certs = parseCertificatesPem(certsPem, 'x509svid', 'PKI_ERR_SVID_MALFORMED');
    const id = checkLeaf(certs[0] as X509Certificate);
    let key: KeyObject;
    try {
      key = parsePrivateKeyPem(keyPem);
    } catch (err) {
      throw new PkiError('PKI_ERR_SVID_MALFORMED', 'x509svid: private key is not a readable ECDSA P-256 key', { cause: err });
    }
    if (!(certs[0] as X509Certificate).checkPrivateKey(key)) {
      throw new PkiError('PKI_ERR_SVID_MALFORMED', 'x509svid: private key does not match the leaf certificate');
    }
    return new X509Svid(id, certs, key);
  }

  /** leaf is the certificate that names the workload. */
  get leaf(): X509Certificate {
    return this.certificates[0] as X509Certificate;
  }

  /** expiresAt is the leaf's `notAfter`. */
  get expiresAt(): Date {
    return new Date(this.leaf.validTo);
  }

  /** certificatesPem is the chain as `svid.pem` holds it: leaf first, then intermediates. */
  certificatesPem(): string {
    return this.certificates.map((c) => c.toString()).join('');
  }

  /** privateKeyPem is the key as `svid_key.pem` holds it (PKCS#8). */
  privateKeyPem(): string {
    return privateKeyPem(this.privateKey);
  }
}

/** ValidateOptions tune {@link validateX509Svid}. */
export interface ValidateOptions {
  /** now is the time to validate at; defaults to the current time. */
  now?: Date;
  /** clockSkewSeconds tolerates clocks this far apart (default 30, at most 300). */
  clockSkewSeconds?: number;
}

/** ValidatedSvid is what a successful validation proves: who the peer is and the path used. */
export interface ValidatedSvid {
  readonly id: SpiffeId;
  /** chain is the verified path from the leaf to the trusted root, leaf first, root last. */
  readonly chain: readonly X509Certificate[];
}

// Certificates are immutable, so what was learned about one holds for as long as it is presented:
// the leaf rules and the SPIFFE ID of a leaf, the signing rules of a CA, and which signatures
// verified. Keyed by SHA-256 fingerprint; bounded (cleared when full) so a flood cannot grow them.
// Time validity is checked on every call.
const CACHE_MAX = 4096;
const leafCache = new Map<string, SpiffeId | PkiError>();
const signingCache = new Map<string, CertExtensions | PkiError>();
const verified = new Set<string>();

function remember<V>(cache: Map<string, V | PkiError>, key: string, value: V): V {
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(key, value);
  return value;
}

function rememberError<V>(cache: Map<string, V | PkiError>, key: string, err: PkiError): void {
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(key, err);
}

function readExtensions(cert: X509Certificate): CertExtensions {
  let ext: CertExtensions;
  try {
    ext = readCertExtensions(cert.raw);
  } catch (err) {
    throw svidError('PKI_ERR_SVID_MALFORMED', `certificate extensions cannot be parsed (${(err as Error).message})`, err);
  }
  if (ext.unknownCritical.length > 0) {
    throw svidError('PKI_ERR_SVID_UNKNOWN_CRITICAL_EXTENSION', `certificate has a critical extension this validator does not process: ${ext.unknownCritical.join(', ')}`);
  }
  return ext;
}

function svidError(code: PkiErrorCode, message: string, cause?: unknown): PkiError {
  return new PkiError(code, `x509svid: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * checkLeaf applies the leaf rules of the X509-SVID spec (§3.1, §4.1, §4.3, §4.4, §5.2) to one
 * certificate and returns its SPIFFE ID. Throws {@link PkiError} with the code of the rule broken.
 */
export function checkLeaf(cert: X509Certificate): SpiffeId {
  const fp = cert.fingerprint256;
  const hit = leafCache.get(fp);
  if (hit instanceof SpiffeId) return hit;
  if (hit) throw hit;
  try {
    return remember(leafCache, fp, checkLeafUncached(cert));
  } catch (err) {
    if (err instanceof PkiError) rememberError(leafCache, fp, err);
    throw err;
  }
}

function checkLeafUncached(cert: X509Certificate): SpiffeId {
  const ext = readExtensions(cert);
  if (ext.uris.length === 0) throw svidError('PKI_ERR_SVID_NO_URI_SAN', 'leaf certificate must have a URI SAN holding its SPIFFE ID');
  if (ext.uris.length > 1) throw svidError('PKI_ERR_SVID_MULTIPLE_URI_SANS', 'leaf certificate must have exactly one URI SAN');
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(ext.uris[0] as string);
  } catch (err) {
    throw svidError('PKI_ERR_SVID_INVALID_URI_SAN', `URI SAN is not a valid SPIFFE ID (${(err as Error).message})`, err);
  }
  if (id.isRoot) throw svidError('PKI_ERR_SVID_ROOT_PATH', 'leaf SPIFFE ID must have a non-root path');
  if (ext.ca === true) throw svidError('PKI_ERR_SVID_LEAF_IS_CA', 'leaf certificate must not be a CA (basicConstraints cA=true)');
  if (ext.keyUsage === undefined) throw svidError('PKI_ERR_SVID_KEY_USAGE_MISSING', 'key usage extension must be present');
  if (!ext.keyUsageCritical) throw svidError('PKI_ERR_SVID_KEY_USAGE_NOT_CRITICAL', 'key usage extension must be critical');
  if ((ext.keyUsage & KU_KEY_CERT_SIGN) !== 0) throw svidError('PKI_ERR_SVID_KEY_USAGE_CERT_SIGN', 'leaf key usage must not include keyCertSign');
  if ((ext.keyUsage & KU_CRL_SIGN) !== 0) throw svidError('PKI_ERR_SVID_KEY_USAGE_CRL_SIGN', 'leaf key usage must not include cRLSign');
  if ((ext.keyUsage & KU_DIGITAL_SIGNATURE) === 0) {
    throw svidError('PKI_ERR_SVID_KEY_USAGE_NO_DIGITAL_SIGNATURE', 'leaf key usage must include digitalSignature');
  }
  if (ext.eku !== undefined && !(ext.eku.includes(OID_SERVER_AUTH) && ext.eku.includes(OID_CLIENT_AUTH))) {
    throw svidError('PKI_ERR_SVID_EKU_INCOMPLETE', 'extended key usage, when present, must include both serverAuth and clientAuth');
  }
  return id;
}

function checkSigning(cert: X509Certificate): CertExtensions {
  const fp = cert.fingerprint256;
  const hit = signingCache.get(fp);
  if (hit instanceof PkiError) throw hit;
  if (hit) return hit;
  try {
    return remember(signingCache, fp, checkSigningUncached(cert));
  } catch (err) {
    if (err instanceof PkiError) rememberError(signingCache, fp, err);
    throw err;
  }
}

function checkSigningUncached(cert: X509Certificate): CertExtensions {
  const ext = readExtensions(cert);
  if (ext.ca !== true) throw svidError('PKI_ERR_SVID_SIGNING_CERT_NOT_CA', `signing certificate ${cert.subject.replace(/\n/g, ', ')} must have cA=true`);
  if (ext.keyUsage === undefined) throw svidError('PKI_ERR_SVID_KEY_USAGE_MISSING', 'signing certificate must have a key usage extension');
  if (!ext.keyUsageCritical) throw svidError('PKI_ERR_SVID_KEY_USAGE_NOT_CRITICAL', 'signing certificate key usage must be critical');
  if ((ext.keyUsage & KU_KEY_CERT_SIGN) === 0) {
    throw svidError('PKI_ERR_SVID_SIGNING_CERT_NO_KEY_CERT_SIGN', 'signing certificate key usage must include keyCertSign');
  }
  for (const uri of ext.uris) {
    let sid: SpiffeId | undefined;
    try {
      sid = SpiffeId.parse(uri);
    } catch {
      sid = undefined;
    }
    if (sid && !sid.isRoot) throw svidError('PKI_ERR_SVID_SIGNING_CERT_PATH', 'the SPIFFE ID of a signing certificate must not have a path');
  }
  return ext;
}

function checkTime(cert: X509Certificate, nowMs: number, skewMs: number, role: string): void {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (nowMs + skewMs < from) throw svidError('PKI_ERR_SVID_NOT_YET_VALID', `${role} certificate is not valid before ${new Date(from).toISOString()}`);
  if (nowMs - skewMs > to) throw svidError('PKI_ERR_SVID_EXPIRED', `${role} certificate expired at ${new Date(to).toISOString()}`);
}

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  if (!child.checkIssued(parent)) return false;
  const key = `${child.fingerprint256}|${parent.fingerprint256}`;
  if (verified.has(key)) return true;
  if (!child.verify(parent.publicKey)) return false;
  if (verified.size >= CACHE_MAX) verified.clear();
  verified.add(key);
  return true;
}

/**
 * validateX509Svid authenticates a peer: it applies the leaf rules, then builds and verifies the
 * path from the leaf through the presented intermediates to an X.509 authority in the bundle of
 * the leaf's own trust domain (RFC 5280 name chaining, signatures, validity with bounded skew,
 * basic constraints, key usage and path length). Returns the peer's SPIFFE ID.
 *
 * @example
 * const svid = await ca.issueX509Svid('spiffe://example.org/agent/a');
 * const { id } = validateX509Svid(svid.certificates, new BundleSet([ca.bundle()]));
 */
export function validateX509Svid(chain: readonly X509Certificate[], bundles: BundleSource, options: ValidateOptions = {}): ValidatedSvid {
  if (chain.length === 0) throw svidError('PKI_ERR_SVID_MALFORMED', 'no certificate presented');
  if (chain.length > MAX_CHAIN_LENGTH) throw svidError('PKI_ERR_SVID_CHAIN_INVALID', `chain longer than ${MAX_CHAIN_LENGTH} certificates`);
  const skewSeconds = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  if (!(skewSeconds >= 0 && skewSeconds <= MAX_CLOCK_SKEW_SECONDS)) {
    throw new TypeError(`x509svid: clockSkewSeconds must be between 0 and ${MAX_CLOCK_SKEW_SECONDS}`);
  }
  const nowMs = (options.now ?? new Date()).getTime();
  const skewMs = skewSeconds * 1000;
  const leaf = chain[0] as X509Certificate;
  const id = checkLeaf(leaf);
  const bundle = bundles.getBundle(id.trustDomain);
  if (!bundle) throw new PkiError('PKI_ERR_BUNDLE_NOT_FOUND', `x509svid: no trust bundle for trust domain "${id.trustDomain.name}"`);
  if (bundle.x509Authorities.length === 0) {
    throw new PkiError('PKI_ERR_BUNDLE_EMPTY', `x509svid: the bundle of "${id.trustDomain.name}" holds no X.509 authority`);
  }
  checkTime(leaf, nowMs, skewMs, 'leaf');

  const path: X509Certificate[] = [leaf];
  const unused = chain.slice(1);
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN_LENGTH; depth++) {
    const root = bundle.x509Authorities.find((a) => issuedBy(current, a));
    if (root) {
      checkCaPath(root, path.length - 1);
      checkTime(root, nowMs, skewMs, 'root');
      path.push(root);
      return { id, chain: path };
    }
    const idx = unused.findIndex((c) => issuedBy(current, c));
    if (idx < 0) {
      // OpenSSL's checkIssued refuses an issuer without keyCertSign; name that rule instead of
      // the vaguer "untrusted". Only on the failure path.
      const named = [...bundle.x509Authorities, ...unused].find((c) => current.issuer === c.subject && current.verify(c.publicKey));
      if (named) checkSigning(named);
      throw svidError(
        'PKI_ERR_SVID_UNTRUSTED',
        `certificate chain of ${id.toString()} does not lead to an authority of trust domain "${id.trustDomain.name}"`,
      );
    }
    const next = unused.splice(idx, 1)[0] as X509Certificate;
    checkCaPath(next, path.length - 1);
    checkTime(next, nowMs, skewMs, 'intermediate');
    path.push(next);
    current = next;
  }
  throw svidError('PKI_ERR_SVID_CHAIN_INVALID', 'certificate chain is too long');
}

function checkCaPath(ca: X509Certificate, intermediatesBelow: number): void {
  const ext = checkSigning(ca);
  if (ext.pathLength !== undefined && intermediatesBelow > ext.pathLength) {
    throw svidError('PKI_ERR_SVID_CHAIN_INVALID', `path length constraint ${ext.pathLength} of a signing certificate is exceeded`);
  }
}
