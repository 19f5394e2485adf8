import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { PkiError } from './errors.js';
import { TrustDomain } from './spiffe-id.js';

/** JwtAuthority is a public key that verifies JWT-SVIDs, named by its `kid`. */
export interface JwtAuthority {
  readonly keyId: string;
  readonly publicKey: KeyObject;
}

/**
 * TrustBundle holds the authorities of one trust domain: the X.509 CA certificates that X509-SVIDs
 * chain to, and the public keys that sign JWT-SVIDs. Immutable; a rotation makes a new bundle.
 */
export class TrustBundle {
  readonly trustDomain: TrustDomain;
  readonly x509Authorities: readonly X509Certificate[];
  readonly jwtAuthorities: ReadonlyMap<string, JwtAuthority>;
  /** sequenceNumber is `spiffe_sequence` from a JWKS bundle, when present. */
  readonly sequenceNumber: number | undefined;
  /** refreshHintSeconds is `spiffe_refresh_hint` from a JWKS bundle, when present. */
  readonly refreshHintSeconds: number | undefined;

  constructor(init: {
    trustDomain: TrustDomain;
    x509Authorities?: readonly X509Certificate[];
    jwtAuthorities?: Iterable<JwtAuthority>;
    sequenceNumber?: number;
    refreshHintSeconds?: number;
  }) {
    this.trustDomain = init.trustDomain;
    this.x509Authorities = Object.freeze([...(init.x509Authorities ?? [])]);
    const jwt = new Map<string, JwtAuthority>();
    for (const a of init.jwtAuthorities ?? []) jwt.set(a.keyId, a);
    this.jwtAuthorities = jwt;
    this.sequenceNumber = init.sequenceNumber;
    this.refreshHintSeconds = init.refreshHintSeconds;
  }

  /** TrustBundle.fromPem reads every `CERTIFICATE` block of `pem` as an X.509 authority. */
  static fromPem(trustDomain: TrustDomain | string, pem: string | Buffer): TrustBundle {
    const td = typeof trustDomain === 'string' ? TrustDomain.parse(trustDomain) : trustDomain;
    return new TrustBundle({ trustDomain: td, x509Authorities: parseCertificatesPem(pem, 'bundle') });
  }

  /**
   * TrustBundle.parseJwks reads the SPIFFE bundle format (a JWK Set with `spiffe_sequence` and
   * `spiffe_refresh_hint`). Per the SPIFFE bundle spec, entries with an unknown `use` or `kty`
   * are ignored, an `x509-svid` entry contributes the first certificate of its `x5c`, and a
   * `jwt-svid` entry needs a `kid`. A bundle with nothing usable parses, and then validates no SVID.
   */
  static parseJwks(trustDomain: TrustDomain | string, json: string | Buffer): TrustBundle {
    const td = typeof trustDomain === 'string' ? TrustDomain.parse(trustDomain) : trustDomain;
    let doc: unknown;
    try {
      doc = JSON.parse(json.toString());
    } catch (err) {
      throw new PkiError('PKI_ERR_BUNDLE_MALFORMED', 'bundle: not valid JSON', { cause: err });
    }
    if (!isObject(doc) || !Array.isArray(doc.keys)) {
      throw new PkiError('PKI_ERR_BUNDLE_MALFORMED', 'bundle: a SPIFFE bundle must be an object with a "keys" array');
    }
    const x509Authorities: X509Certificate[] = [];
    const jwtAuthorities: JwtAuthority[] = [];
    for (const entry of doc.keys) {
      if (!isObject(entry) || typeof entry.kty !== 'string') {
        throw new PkiError('PKI_ERR_BUNDLE_MALFORMED', 'bundle: every key must be a JWK with "kty"');
      }
      if (entry.kty !== 'EC' && entry.kty !== 'RSA' && entry.kty !== 'OKP') continue;
      if (entry.use === 'x509-svid') {
        if (!Array.isArray(entry.x5c) || entry.x5c.length === 0 || typeof entry.x5c[0] !== 'string') continue;
        try {
          x509Authorities.push(new X509Certificate(Buffer.from(entry.x5c[0], 'base64')));
        } catch (err) {
          throw new PkiError('PKI_ERR_BUNDLE_MALFORMED', 'bundle: an x509-svid entry holds an unreadable certificate', { cause: err });
        }
      } else if (entry.use === 'jwt-svid') {
        if (typeof entry.kid !== 'string' || entry.kid.length === 0) continue;
        if ('d' in entry || 'p' in entry || 'k' in entry) {
          throw new PkiError('PKI_ERR_BUNDLE_MALFORMED', `bundle: jwt-svid key ${JSON.stringify(entry.kid)} carries private key material`);
        }
        let publicKey: KeyObject;
        try {
          const { use: _use, kid: _kid, ...jwk } = entry;
          publicKey = createPublicKey({ key: jwk as never, format: 'jwk' });
        } catch (err) {
          throw new PkiError('PKI_ERR_BUNDLE_MALFORMED', `bundle: jwt-svid key ${JSON.stringify(entry.kid)} is not a valid public JWK`, { cause: err });
        }
        jwtAuthorities.push({ keyId: entry.kid, publicKey });
      }
    }
    const seq = doc.spiffe_sequence;
    const hint = doc.spiffe_refresh_hint;
    return new TrustBundle({
      trustDomain: td,
      x509Authorities,
      jwtAuthorities,
      ...(typeof seq === 'number' && Number.isInteger(seq) && seq >= 0 ? { sequenceNumber: seq } : {}),
      ...(typeof hint === 'number' && hint > 0 ? { refreshHintSeconds: hint } : {}),
    });
  }

  /** toPem writes the X.509 authorities as concatenated PEM blocks. */
  toPem(): string {
    return this.x509Authorities.map((c) => c.toString()).join('');
  }

  /** toJwks writes the bundle in the SPIFFE bundle (JWK Set) format. */
  toJwks(options: { sequenceNumber?: number; refreshHintSeconds?: number } = {}): string {
    const keys: Record<string, unknown>[] = [];
    for (const cert of this.x509Authorities) {
      const jwk = cert.publicKey.export({ format: 'jwk' });
      keys.push({ ...jwk, use: 'x509-svid', x5c: [cert.raw.toString('base64')] });
    }
    for (const a of this.jwtAuthorities.values()) {
      keys.push({ ...a.publicKey.export({ format: 'jwk' }), use: 'jwt-svid', kid: a.keyId });
    }
    const seq = options.sequenceNumber ?? this.sequenceNumber;
    const hint = options.refreshHintSeconds ?? this.refreshHintSeconds;
    return `${JSON.stringify(
      {
        keys,
        ...(seq === undefined ? {} : { spiffe_sequence: seq }),
        ...(hint === undefined ? {} : { spiffe_refresh_hint: hint }),
      },
      null,
      2,
    )}\n`;
  }
}

/** BundleSource returns the trust bundle of a trust domain, or `undefined` when none is known. */
export interface BundleSource {
  getBundle(trustDomain: TrustDomain): TrustBundle | undefined;
}

/** BundleSet is a static {@link BundleSource} over a fixed list of bundles, one per trust domain. */
export class BundleSet implements BundleSource {
  private readonly byName = new Map<string, TrustBundle>();

  constructor(bundles: Iterable<TrustBundle>) {
    for (const b of bundles) this.byName.set(b.trustDomain.name, b);
  }

  getBundle(trustDomain: TrustDomain): TrustBundle | undefined {
    return this.byName.get(trustDomain.name);
  }

  /** bundles lists the bundles of the set. */
  bundles(): TrustBundle[] {
    return [...this.byName.values()];
  }
}

/** parseCertificatesPem reads every `CERTIFICATE` PEM block, in order. */
export function parseCertificatesPem(
  pem: string | Buffer,
  what = 'pem',
  code: 'PKI_ERR_BUNDLE_MALFORMED' | 'PKI_ERR_SVID_MALFORMED' = 'PKI_ERR_BUNDLE_MALFORMED',
): X509Certificate[] {
  const text = pem.toString();
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    throw new PkiError(code, `${what}: no PEM CERTIFICATE block found`);
  }
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new PkiError(code, `${what}: certificate ${i + 1} is not a valid X.509 certificate`, { cause: err });
    }
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
