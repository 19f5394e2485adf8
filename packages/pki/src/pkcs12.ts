import { createHash, randomBytes, type X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { PkiError } from './errors.js';
import type { TrustBundle } from './trust-bundle.js';
import type { X509Svid } from './x509-svid.js';

/** Pkcs12Options configure {@link exportPkcs12}. */
export interface Pkcs12Options {
  /** friendlyName labels the key and leaf certificate in key stores (default: the SPIFFE ID). */
  friendlyName?: string;
}

const { asn1, pki } = forge;
type Asn1 = forge.asn1.Asn1;

// Same defaults as OpenSSL 3's `pkcs12 -export`: PBKDF2 / PKCS#12-KDF with 2048 iterations.
const KDF_ITERATIONS = 2048;
const MAC_SALT_BYTES = 16;
const OID_SHA256 = '2.16.840.1.101.3.4.2.1';

const seq = (items: (Asn1 | undefined)[]): Asn1 => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items.filter((i): i is Asn1 => i !== undefined));
const set = (items: Asn1[]): Asn1 => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, items);
const oid = (o: string): Asn1 => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(o).getBytes());
const octets = (bytes: string): Asn1 => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes);
const explicit0 = (inner: Asn1): Asn1 => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [inner]);
const integer = (n: number): Asn1 => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(n).getBytes());
const fromDer = (der: Buffer): Asn1 => asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
const toDer = (node: Asn1): string => asn1.toDer(node).getBytes();

/** dataContentInfo wraps DER bytes as a PKCS#7 ContentInfo of type `data`. */
function dataContentInfo(der: string): Asn1 {
  return seq([oid(pki.oids.data as string), explicit0(octets(der))]);
}

function fail(message: string): never {
  throw new PkiError('PKI_ERR_SVID_UNTRUSTED', `pkcs12: ${message}`);
}

/**
 * exportPkcs12 packs an X509-SVID into a password-protected PKCS#12 file for tools and key stores
 * that want one (browsers, Java, Windows): the private key (PKCS#8, encrypted PBES2 with
 * PBKDF2-HMAC-SHA256 and AES-256-CBC), the leaf, its intermediates and the root of `bundle` the
 * chain leads to, with a SHA-256 integrity MAC. An empty password is refused
 * (`PKI_ERR_P12_PASSWORD_MISSING`): a PKCS#12 file is a private key at rest.
 *
 * @example
 * writeFileSync('svid.p12', exportPkcs12(svid, ca.bundle(), password));
 */
export function exportPkcs12(svid: X509Svid, bundle: TrustBundle, password: string, options: Pkcs12Options = {}): Buffer {
  if (typeof password !== 'string') throw new TypeError('pkcs12: password must be a string');
  if (password.length === 0) throw new PkiError('PKI_ERR_P12_PASSWORD_MISSING', 'pkcs12: a password is required to export a private key');
  const friendlyName = options.friendlyName ?? svid.id.toString();
  if (typeof friendlyName !== 'string') throw new TypeError('pkcs12: friendlyName must be a string');
  if (!svid.leaf.checkPrivateKey(svid.privateKey)) {
    throw new PkiError('PKI_ERR_SVID_MALFORMED', 'pkcs12: the private key does not belong to the leaf certificate');
  }
  if (!bundle.trustDomain.equals(svid.id.trustDomain)) {
    fail(`the bundle is for trust domain "${bundle.trustDomain.name}", the SVID for "${svid.id.trustDomain.name}"`);
  }
  const certs = withRoot(svid.certificates, bundle);

  // Key and leaf share localKeyId (SHA-1 of the leaf, as OpenSSL does) so readers pair them.
  const attrs = set([
    seq([oid(pki.oids.localKeyId as string), set([octets(createHash('sha1').update(svid.leaf.raw).digest().toString('binary'))])]),
    seq([oid(pki.oids.friendlyName as string), set([asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BMPSTRING, false, friendlyName)])]),
  ]);

  const certBags = certs.map((cert, i) =>
    seq([
      oid(pki.oids.certBag as string),
      explicit0(seq([oid(pki.oids.x509Certificate as string), explicit0(octets(cert.raw.toString('binary')))])),
      i === 0 ? attrs : undefined,
    ]),
  );

  // Node (OpenSSL) encrypts the PKCS#8 key: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC. forge's
  // helpers only understand RSA keys, so it is given the finished EncryptedPrivateKeyInfo.
  const encryptedKey = svid.privateKey.export({ type: 'pkcs8', format: 'der', cipher: 'aes-256-cbc', passphrase: password });
  const keyBag = seq([oid(pki.oids.pkcs8ShroudedKeyBag as string), explicit0(fromDer(encryptedKey)), attrs]);

  const authSafe = seq([dataContentInfo(toDer(seq(certBags))), dataContentInfo(toDer(seq([keyBag])))]);
  const authSafeDer = toDer(authSafe);

  // RFC 7292 integrity: HMAC over the AuthenticatedSafe, keyed by the PKCS#12 KDF (appendix B).
  const salt = randomBytes(MAC_SALT_BYTES).toString('binary');
  const macKey = forge.pkcs12.generateKey(password, forge.util.createBuffer(salt), 3, KDF_ITERATIONS, 32, forge.md.sha256.create());
  const hmac = forge.hmac.create();
  hmac.start('sha256', macKey.getBytes());
  hmac.update(authSafeDer);
  const macData = seq([
    seq([seq([oid(OID_SHA256), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '')]), octets(hmac.digest().getBytes())]),
    octets(salt),
    integer(KDF_ITERATIONS),
  ]);

  const pfx = seq([integer(3), dataContentInfo(authSafeDer), macData]);
  return Buffer.from(toDer(pfx), 'binary');
}

/** withRoot returns the SVID chain followed by the bundle root that issued its last certificate. */
function withRoot(chain: readonly X509Certificate[], bundle: TrustBundle): X509Certificate[] {
  const out = [...chain];
  const last = out[out.length - 1] as X509Certificate;
  const root = bundle.x509Authorities.find((a) => last.checkIssued(a) && last.verify(a.publicKey));
  if (!root) fail('the SVID chain does not lead to an authority of the bundle');
  if (!out.some((c) => c.fingerprint256 === root.fingerprint256)) out.push(root);
  return out;
}
