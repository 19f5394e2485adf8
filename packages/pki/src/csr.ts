import { createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import type { CertificateAuthority, IssueOptions } from './ca.js';
import { PkiError, type PkiErrorCode } from './errors.js';
import { ECDSA_SHA256, publicKeyOf, toSigningKey, toVerifyKey, x509 } from './internal/crypto.js';
import { SpiffeId } from './spiffe-id.js';

/** ParsedCsr is what {@link parseCsr} reads from a verified PKCS#10 request. */
export interface ParsedCsr {
  /** publicKey is the ECDSA P-256 key the request proves possession of. */
  publicKey: KeyObject;
  /** requestedUris are the URI SANs the requester asked for: informational only, never issued as asked. */
  requestedUris: string[];
}

// A CSR for a P-256 key is well under 1 KiB; the cap keeps a hostile peer from making us parse megabytes.
const MAX_CSR_PEM_LENGTH = 16 * 1024;
const PEM_BLOCK = /-----BEGIN (NEW )?CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END \1CERTIFICATE REQUEST-----/g;

function fail(code: PkiErrorCode, message: string, cause?: unknown): never {
  throw new PkiError(code, `csr: ${message}`, cause === undefined ? undefined : { cause });
}

function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

/**
 * createCsr makes a PKCS#10 certificate signing request (PEM) for `privateKey`, an ECDSA P-256
 * key, signed ECDSA-SHA256. With `id`, the request carries it as a URI SAN; the CA treats that as
 * a hint only and decides the identity itself.
 *
 * @example
 * const key = newP256Key();
 * const pem = await createCsr(key, { id: 'spiffe://example.org/connector/crm' });
 */
export async function createCsr(privateKey: KeyObject, options: { id?: SpiffeId | string } = {}): Promise<string> {
  if (!privateKey || typeof privateKey !== 'object' || privateKey.type !== 'private') {
    throw new TypeError('csr: privateKey must be a private KeyObject');
  }
  if (!isP256(privateKey)) fail('PKI_ERR_CSR_KEY_UNSUPPORTED', 'only ECDSA P-256 keys are supported');
  const id = options.id === undefined ? undefined : typeof options.id === 'string' ? SpiffeId.parse(options.id) : options.id;
  const extensions: x509.Extension[] = [];
  let name = 'O=Switchboard';
  if (id) {
    extensions.push(new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id.toString() }], false));
    // Path segments are limited to [A-Za-z0-9._-], so the CN needs no escaping.
    if (!id.isRoot) name = `CN=${id.path.slice(id.path.lastIndexOf('/') + 1)}, O=Switchboard`;
  }
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys: { privateKey: await toSigningKey(privateKey), publicKey: await toVerifyKey(publicKeyOf(privateKey)) } as never,
    signingAlgorithm: ECDSA_SHA256,
    extensions,
  });
  return csr.toString('pem') + '\n';
}

/**
 * parseCsr reads a PEM PKCS#10 request, checks its key is ECDSA P-256
 * (`PKI_ERR_CSR_KEY_UNSUPPORTED`) and verifies its self-signature
 * (`PKI_ERR_CSR_SIGNATURE_INVALID`), proving the requester holds the private key. Anything
 * unreadable is `PKI_ERR_CSR_MALFORMED`.
 */
export async function parseCsr(pem: string): Promise<ParsedCsr> {
  if (typeof pem !== 'string') fail('PKI_ERR_CSR_MALFORMED', 'a CSR must be a PEM string');
  if (pem.length > MAX_CSR_PEM_LENGTH) fail('PKI_ERR_CSR_MALFORMED', `CSR is longer than ${MAX_CSR_PEM_LENGTH} characters`);
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  if (blocks.length === 0) fail('PKI_ERR_CSR_MALFORMED', 'no PEM CERTIFICATE REQUEST block found');
  if (blocks.length > 1) fail('PKI_ERR_CSR_MALFORMED', 'more than one PEM CERTIFICATE REQUEST block');
  const der = Buffer.from((blocks[0] as RegExpMatchArray)[2] as string, 'base64');

  let csr: x509.Pkcs10CertificateRequest;
  let spki: ArrayBuffer;
  const requestedUris: string[] = [];
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
    spki = csr.publicKey.rawData;
    for (const ext of csr.extensions) {
      if (ext instanceof x509.SubjectAlternativeNameExtension) {
        for (const gn of ext.names.items) if (gn.type === 'url') requestedUris.push(gn.value);
      }
    }
  } catch (err) {
    fail('PKI_ERR_CSR_MALFORMED', `not a valid PKCS#10 certificate request (${(err as Error).message})`, err);
  }

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (err) {
    fail('PKI_ERR_CSR_KEY_UNSUPPORTED', `the requested public key cannot be read (${(err as Error).message})`, err);
  }
  if (!isP256(publicKey)) fail('PKI_ERR_CSR_KEY_UNSUPPORTED', `only ECDSA P-256 keys are certified, not ${describeKey(publicKey)}`);

  let ok = false;
  try {
    ok = await csr.verify();
  } catch (err) {
    fail('PKI_ERR_CSR_SIGNATURE_INVALID', `signature cannot be verified (${(err as Error).message})`, err);
  }
  if (!ok) fail('PKI_ERR_CSR_SIGNATURE_INVALID', 'signature does not verify with the requested public key');
  return { publicKey, requestedUris };
}

function describeKey(key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve ? `${key.asymmetricKeyType} ${curve}` : String(key.asymmetricKeyType);
}

/**
 * issueFromCsr certifies the key of `csrPem` as `id` and returns the chain (leaf, intermediate).
 * The CA alone decides the certificate: `id` is the identity, and every name or extension the
 * request asks for (a different URI SAN, `cA=true`, key usages) is ignored.
 *
 * @example
 * const chain = await issueFromCsr(ca, csrPem, SpiffeId.parse('spiffe://example.org/agent/support'));
 */
export async function issueFromCsr(ca: CertificateAuthority, csrPem: string, id: SpiffeId | string, options: IssueOptions = {}): Promise<X509Certificate[]> {
  const sid = typeof id === 'string' ? SpiffeId.parse(id) : id;
  ca.checkId(sid);
  const { publicKey } = await parseCsr(csrPem);
  return ca.signX509Svid(sid, publicKey, options);
}
