import { X509Certificate, createPublicKey, sign, verify } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Identity } from '@switchboard/pki';

/**
 * Re-authentication in place: a peer whose SVID was renewed proves, on a live connection, that it
 * holds the new key, and the relay moves the connection to the new certificate (its expiry, its
 * serial) without closing it. The proof is an ECDSA-SHA256 signature by the new key over a value
 * exported from this connection's TLS session (RFC 8446 §7.5, `exportKeyingMaterial`), so it cannot
 * be replayed on another connection, and a stolen certificate without its key proves nothing.
 * docs/protocol.md, "Re-authentication".
 */

/**
 * REAUTH_HEADER is the response header of an agent WebSocket upgrade that says the relay accepts a
 * binary REAUTH message on the session (value `v1`); an agent sends one only then.
 */
export const REAUTH_HEADER = 'Switchboard-Reauth';

/** REAUTH_EXPORTER_LABEL is the TLS exporter label of the proof. */
export const REAUTH_EXPORTER_LABEL = 'EXPORTER-switchboard-reauth-v1';
const EXPORTER_BYTES = 32;
const MAX_CHAIN = 8;
const MAX_CERT_BASE64 = 8 * 1024;

/** ReauthPayload is what the peer sends: its new chain (base64 DER, leaf first) and the proof. */
export interface ReauthPayload {
  chain: string[];
  proof: string;
}

/** ReauthResultPayload is the relay's answer: accepted (with the new expiry) or not (why). */
export interface ReauthResultPayload {
  ok: boolean;
  /** notAfter is when the connection now expires (ISO 8601), when accepted. */
  notAfter?: string;
  reason?: string;
}

function exporter(socket: TLSSocket): Buffer {
  return socket.exportKeyingMaterial(EXPORTER_BYTES, REAUTH_EXPORTER_LABEL, Buffer.alloc(0));
}

/** reauthProof builds the {@link ReauthPayload} for `identity` on the TLS connection `socket`. */
export function reauthProof(socket: TLSSocket, identity: Identity): ReauthPayload {
  const chain = identity.svid.certificates.map((c) => c.raw.toString('base64'));
  const proof = sign('sha256', exporter(socket), identity.svid.privateKey).toString('base64');
  return { chain, proof };
}

/** checkReauthPayload holds a decoded payload to its type; throws `TypeError` naming the field. */
export function checkReauthPayload(p: unknown): ReauthPayload {
  const o = p as Partial<ReauthPayload> | null;
  if (typeof o !== 'object' || o === null) throw new TypeError('REAUTH payload must be an object');
  if (!Array.isArray(o.chain) || o.chain.length === 0 || o.chain.length > MAX_CHAIN || !o.chain.every((c) => typeof c === 'string' && c.length <= MAX_CERT_BASE64)) {
    throw new TypeError(`REAUTH.chain must be a list of 1 to ${MAX_CHAIN} base64 certificates`);
  }
  if (typeof o.proof !== 'string' || o.proof.length > 512) throw new TypeError('REAUTH.proof must be a base64 signature');
  return { chain: o.chain, proof: o.proof };
}

/**
 * openReauth parses the chain of a {@link ReauthPayload} and checks the proof against this
 * connection's exporter with the leaf's key. Returns the chain for the caller's SVID validation;
 * throws `Error` with the reason when the proof does not hold.
 */
export function openReauth(socket: TLSSocket, payload: ReauthPayload): X509Certificate[] {
  let chain: X509Certificate[];
  try {
    chain = payload.chain.map((c) => new X509Certificate(Buffer.from(c, 'base64')));
  } catch (err) {
    throw new Error(`the chain is not DER certificates (${(err as Error).message})`, { cause: err });
  }
  const leaf = chain[0] as X509Certificate;
  const ok = verify('sha256', exporter(socket), createPublicKey(leaf.publicKey.export({ type: 'spki', format: 'pem' })), Buffer.from(payload.proof, 'base64'));
  if (!ok) throw new Error('the proof does not verify with the new certificate\'s key on this connection');
  return chain;
}
