import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { PkiError, isPkiError, validateX509Svid, type BundleSource, type SpiffeId } from '@switchboard/pki';
import { openReauth, type ReauthPayload } from '@switchboard/protocol';

/**
 * PeerIdentity is an authenticated peer: the SPIFFE ID of its X509-SVID and the serial number of
 * the leaf certificate it presented (hex), which is what revocation by serial refers to.
 */
export interface PeerIdentity {
  readonly id: SpiffeId;
  /** certSerial is the leaf certificate's serial number, hex. */
  readonly certSerial: string;
  /** expiresAt is when the validated path (leaf, intermediates, root) stops being valid: its earliest notAfter. */
  readonly expiresAt: Date;
  /** leaf is the certificate the peer presented. */
  readonly leaf: X509Certificate;
}

const CACHE_MAX = 4096;
const MAX_CHAIN = 8;
const MAX_KNOWN_INTERMEDIATES = 64;

/**
 * PeerAuthenticator turns a TLS socket's client certificate chain into a validated SPIFFE ID.
 * OpenSSL has already verified the chain against the bundle roots during the handshake; this
 * applies the X509-SVID rules (one URI SAN, not a CA, key usage, …) and the bundle of the leaf's
 * own trust domain, per upgrade, so an expired certificate on a resumed TLS session is caught too.
 *
 * Parsed certificates are cached by DER, so the upgrade path does not parse a certificate twice.
 * A resumed TLS session does not carry the peer's intermediates; the intermediates of earlier
 * validated chains are offered as candidates then (they are only candidates: the path must still
 * verify up to a bundle root).
 */
export class PeerAuthenticator {
  private readonly bundles: BundleSource;
  private readonly now: () => Date;
  private readonly byDer = new Map<string, X509Certificate>();
  private readonly intermediates = new Map<string, X509Certificate>();

  constructor(bundles: BundleSource, options: { now?: () => Date } = {}) {
    this.bundles = bundles;
    this.now = options.now ?? (() => new Date());
  }

  /** authenticate validates the peer of `socket`; throws PkiError naming the broken rule. */
  authenticate(socket: TLSSocket): PeerIdentity {
    const chain = this.chainOf(socket);
    try {
      return this.validate(chain);
    } catch (err) {
      if (!isPkiError(err, 'PKI_ERR_SVID_UNTRUSTED') || this.intermediates.size === 0) throw err;
      const extended = [...chain];
      for (const c of this.intermediates.values()) {
        if (extended.length >= MAX_CHAIN) break;
        if (!extended.includes(c)) extended.push(c);
      }
      return this.validate(extended);
    }
  }

  /**
   * reauthenticate checks a renewed SVID presented on a live connection (REAUTH): the proof signed
   * by the new key over this connection's TLS exporter, the X509-SVID rules and bundle, and the same
   * SPIFFE ID as `current`. Returns the connection's new identity; throws `Error` naming the reason.
   */
  reauthenticate(socket: TLSSocket, payload: ReauthPayload, current: PeerIdentity): PeerIdentity {
    const chain = openReauth(socket, payload);
    const next = this.validate(chain);
    if (!next.id.equals(current.id)) throw new Error(`the new certificate names ${next.id.toString()}, the connection ${current.id.toString()}`);
    return next;
  }

  private validate(chain: X509Certificate[]): PeerIdentity {
    const now = this.now();
    const { id, chain: path } = validateX509Svid(chain, this.bundles, { now });
    let expires = Infinity;
    for (const c of path) expires = Math.min(expires, Date.parse(c.validTo));
    // The validator allows clock skew; a live connection is closed at notAfter exactly, so a peer
    // past it is not let in for the few seconds until its timer fires.
    if (expires <= now.getTime()) throw new PkiError('PKI_ERR_SVID_EXPIRED', `x509svid: certificate path expired at ${new Date(expires).toISOString()}`);
    for (let i = 1; i < path.length - 1; i++) this.rememberIntermediate(path[i] as X509Certificate);
    const leaf = chain[0] as X509Certificate;
    return { id, certSerial: leaf.serialNumber, expiresAt: new Date(expires), leaf };
  }

  /** chainOf returns the certificates the peer presented, leaf first, parsed once per DER. */
  chainOf(socket: TLSSocket): X509Certificate[] {
    const out: X509Certificate[] = [];
    let cur: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
    while (cur && cur.raw && out.length < MAX_CHAIN) {
      out.push(this.parse(cur.raw));
      const next: DetailedPeerCertificate | undefined = cur.issuerCertificate;
      // A self-signed root points at itself.
      if (!next || next === cur || next.raw?.equals(cur.raw)) break;
      cur = next;
    }
    return out;
  }

  private parse(der: Buffer): X509Certificate {
    const key = der.toString('latin1');
    let cert = this.byDer.get(key);
    if (cert === undefined) {
      cert = new X509Certificate(der);
      if (this.byDer.size >= CACHE_MAX) this.byDer.clear();
      this.byDer.set(key, cert);
    }
    return cert;
  }

  private rememberIntermediate(cert: X509Certificate): void {
    const fp = cert.fingerprint256;
    if (this.intermediates.has(fp)) return;
    if (this.intermediates.size >= MAX_KNOWN_INTERMEDIATES) {
      const oldest = this.intermediates.keys().next().value;
      if (oldest !== undefined) this.intermediates.delete(oldest);
    }
    this.intermediates.set(fp, cert);
  }
}
