import { randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { ECDSA_SHA256, toSigningKey, toVerifyKey, x509 } from './crypto.js';

/** CertSpec is everything that varies between the certificates Switchboard (and its tests) mint. */
export interface CertSpec {
  subject: string;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** uris become URI SANs; an empty list means no SAN extension at all. */
  uris: readonly string[];
  /** basicConstraints: `undefined` omits the extension. */
  basicConstraints?: { ca: boolean; pathLength?: number; critical?: boolean } | undefined;
  /** keyUsage flags (x509.KeyUsageFlags); `undefined` omits the extension. */
  keyUsage?: { flags: number; critical: boolean } | undefined;
  /** eku OIDs; `undefined` omits the extension. */
  eku?: readonly string[] | undefined;
}

/** Issuer signs certificates: its certificate (for the issuer name and AKI) and private key. */
export interface Issuer {
  certificate: X509Certificate;
  privateKey: KeyObject;
}

/** randomSerial makes a positive 128-bit serial number, hex encoded. */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] as number) & 0x7f) | 0x01;
  return b.toString('hex');
}

/**
 * buildCertificate signs a certificate from `spec`, by `issuer`, or self-signed with
 * `selfSignKey` when no issuer is given.
 */
export async function buildCertificate(spec: CertSpec, issuer: Issuer | { selfSignKey: KeyObject }): Promise<X509Certificate> {
  const publicKey = (await toVerifyKey(spec.publicKey)) as never;
  const extensions: x509.Extension[] = [];
  if (spec.basicConstraints) {
    const bc = spec.basicConstraints;
    extensions.push(new x509.BasicConstraintsExtension(bc.ca, bc.pathLength, bc.critical ?? true));
  }
  if (spec.keyUsage) extensions.push(new x509.KeyUsagesExtension(spec.keyUsage.flags, spec.keyUsage.critical));
  if (spec.eku) extensions.push(new x509.ExtendedKeyUsageExtension([...spec.eku], false));
  if (spec.uris.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension(spec.uris.map((u) => ({ type: 'url' as const, value: u })), false));
  }
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(publicKey));
  const common = {
    serialNumber: randomSerial(),
    subject: spec.subject,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    signingAlgorithm: ECDSA_SHA256,
    publicKey,
  };
  let cert: x509.X509Certificate;
  if ('selfSignKey' in issuer) {
    cert = await x509.X509CertificateGenerator.create({
      ...common,
      issuer: spec.subject,
      signingKey: (await toSigningKey(issuer.selfSignKey)) as never,
      extensions,
    });
  } else {
    const issuerCert = new x509.X509Certificate(issuer.certificate.raw);
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuerCert.publicKey, false));
    cert = await x509.X509CertificateGenerator.create({
      ...common,
      issuer: issuerCert.subject,
      signingKey: (await toSigningKey(issuer.privateKey)) as never,
      extensions,
    });
  }
  return new X509Certificate(Buffer.from(cert.rawData));
}
