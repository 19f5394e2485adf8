import type { KeyObject, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '@switchboard/common';
import { PkiError, SpiffeId, parseCsr, type SvidIssuer } from '@switchboard/pki';
import type { AuditSink } from '../audit/sink.js';
import type { PeerAuthenticator, PeerIdentity } from '../auth/peer-auth.js';
import type { RelayMetrics } from '../metrics.js';
import type { PolicyStore } from '../policy/store.js';

/** RENEW_PATH is where workloads renew their X509-SVID on the main (mTLS) listener. */
export const RENEW_PATH = '/v1/renew';

/** MAX_RENEW_BODY_BYTES bounds a renewal request (a P-256 CSR in JSON is under 1 KiB). */
export const MAX_RENEW_BODY_BYTES = 16 * 1024;

/** MAX_RENEWALS_PER_CERTIFICATE bounds how often one certificate may be renewed (a lost answer can be retried). */
export const MAX_RENEWALS_PER_CERTIFICATE = 5;

/** RenewErrorCode is the `code` of a refused renewal (docs/errors.md). */
export type RenewErrorCode =
  | 'RENEW_ERR_DISABLED'
  | 'RENEW_ERR_METHOD'
  | 'RENEW_ERR_IDENTITY'
  | 'RENEW_ERR_REVOKED'
  | 'RENEW_ERR_MALFORMED'
  | 'RENEW_ERR_TOO_LARGE'
  | 'RENEW_ERR_CSR_KEY'
  | 'RENEW_ERR_CSR_SIGNATURE'
  | 'RENEW_ERR_ID_MISMATCH'
  | 'RENEW_ERR_KEY_REUSED'
  | 'RENEW_ERR_TOO_MANY'
  | 'RENEW_ERR_ISSUER';

const STATUS: Record<RenewErrorCode, number> = {
  RENEW_ERR_DISABLED: 404,
  RENEW_ERR_METHOD: 405,
  RENEW_ERR_IDENTITY: 403,
  RENEW_ERR_REVOKED: 403,
  RENEW_ERR_MALFORMED: 400,
  RENEW_ERR_TOO_LARGE: 413,
  RENEW_ERR_CSR_KEY: 400,
  RENEW_ERR_CSR_SIGNATURE: 400,
  RENEW_ERR_ID_MISMATCH: 403,
  RENEW_ERR_KEY_REUSED: 400,
  RENEW_ERR_TOO_MANY: 429,
  RENEW_ERR_ISSUER: 503,
};

/** RenewalOptions configure the renewal endpoint (`renewal:` in relay.yaml). */
export interface RenewalOptions {
  /** issuer signs the renewed SVIDs; without one the endpoint answers 404 RENEW_ERR_DISABLED. */
  issuer: SvidIssuer | undefined;
  /** ttlSeconds is the lifetime of a renewed SVID (a request may ask for less; the issuer's own expiry caps it). */
  ttlSeconds: number;
}

/** RenewContext is what the endpoint needs from the relay. */
export interface RenewContext {
  readonly renewal: RenewalOptions;
  readonly policy: PolicyStore;
  readonly audit: AuditSink;
  readonly metrics: RelayMetrics;
  readonly logger: Logger;
}

/** RefusalKind is what went wrong with a request for an SVID, shared by renewal and enrollment (`RENEW_ERR_<kind>`, `ENROLL_ERR_<kind>`). */
export type RefusalKind = 'MALFORMED' | 'TOO_LARGE' | 'CSR_KEY' | 'CSR_SIGNATURE' | 'ID_MISMATCH' | 'KEY_REUSED' | 'ISSUER';

/** CsrRefusal is a request for an SVID refused for `kind`; the endpoint names the code. */
export class CsrRefusal extends Error {
  constructor(
    readonly kind: RefusalKind,
    message: string,
  ) {
    super(message);
  }
}

class Refusal extends Error {
  constructor(
    readonly code: RenewErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const asRenewal = (err: unknown): Refusal =>
  err instanceof Refusal ? err : err instanceof CsrRefusal ? new Refusal(`RENEW_ERR_${err.kind}`, err.message) : new Refusal('RENEW_ERR_ISSUER', `the issuer failed: ${(err as Error).message}`);

/** RenewalCounter remembers how often each certificate was renewed, until it expires. */
export class RenewalCounter {
  private readonly counts = new Map<string, { n: number; until: number }>();

  /** take counts one renewal of `serial`; false when it already had its share. */
  take(serial: string, until: number, now: number): boolean {
    const e = this.counts.get(serial);
    if (e !== undefined && e.n >= MAX_RENEWALS_PER_CERTIFICATE) return false;
    if (e !== undefined) e.n++;
    else {
      if (this.counts.size >= 100_000) for (const [k, v] of this.counts) if (v.until <= now) this.counts.delete(k);
      this.counts.set(serial, { n: 1, until });
    }
    return true;
  }
}

/**
 * handleRenew answers `POST /v1/renew`: a workload authenticated by its current SVID (mutual TLS,
 * the X509-SVID rules, not revoked in policy) sends a CSR for a key made on its own host naming its
 * own SPIFFE ID, and gets a new SVID chain plus the current trust bundle. Every answer is audited
 * (`identity.renew`). Body: `{ "csr": "<PEM>", "ttlSeconds"?: n }`; answer:
 * `{ "spiffeId", "svid": "<PEM chain>", "bundle": "<PEM>", "expiresAt" }` or `{ "code", "error" }`.
 */
export function handleRenew(ctx: RenewContext, auth: PeerAuthenticator, counter: RenewalCounter, req: IncomingMessage, res: ServerResponse): void {
  const remote = req.socket.remoteAddress ?? '';
  let peer: PeerIdentity | undefined;
  const refuse = (err: Refusal): void => {
    ctx.metrics.renewals.set(err.code, (ctx.metrics.renewals.get(err.code) ?? 0) + 1);
    ctx.audit.write({ type: 'identity.renew', peer: peer?.id.toString() ?? null, certSerial: peer?.certSerial ?? null, issued: false, newCertSerial: null, notAfter: null, code: err.code, reason: err.message, remote });
    ctx.logger.info({ peer: peer?.id.toString(), code: err.code, reason: err.message }, 'renewal refused');
    const body = `${JSON.stringify({ code: err.code, error: err.message })}\n`;
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', connection: 'close' };
    if (err.code === 'RENEW_ERR_METHOD') headers.allow = 'POST';
    res.writeHead(STATUS[err.code], headers).end(body);
    // A body we did not read would otherwise keep the socket busy.
    req.resume();
  };
  try {
    if (req.method !== 'POST') throw new Refusal('RENEW_ERR_METHOD', 'renewal is POST /v1/renew');
    try {
      peer = auth.authenticate(req.socket as TLSSocket);
    } catch (err) {
      throw new Refusal('RENEW_ERR_IDENTITY', `the client certificate is not a valid X509-SVID (${err instanceof PkiError ? err.code : 'invalid'})`);
    }
    const issuer = ctx.renewal.issuer;
    if (issuer === undefined) throw new Refusal('RENEW_ERR_DISABLED', 'this relay does not renew identities (no renewal.issuer in relay.yaml)');
    const revoked = ctx.policy.identity(peer).revoked;
    if (revoked !== undefined) throw new Refusal('RENEW_ERR_REVOKED', 'this identity has been revoked');
  } catch (err) {
    if (err instanceof Refusal) return refuse(err);
    throw err;
  }
  const authenticated = peer as PeerIdentity;
  readBody(req, MAX_RENEW_BODY_BYTES).then(
    (body) => renew(ctx, counter, authenticated, body).then(
      (answer) => {
        ctx.metrics.renewals.set('issued', (ctx.metrics.renewals.get('issued') ?? 0) + 1);
        ctx.audit.write({
          type: 'identity.renew',
          peer: authenticated.id.toString(),
          certSerial: authenticated.certSerial,
          issued: true,
          newCertSerial: answer.serial,
          notAfter: answer.expiresAt,
          code: null,
          reason: 'issued',
          remote,
        });
        ctx.logger.info({ peer: authenticated.id.toString(), expiresAt: answer.expiresAt }, 'identity renewed');
        const text = `${JSON.stringify({ spiffeId: authenticated.id.toString(), svid: answer.svid, bundle: answer.bundle, expiresAt: answer.expiresAt })}\n`;
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) }).end(text);
      },
      (err: unknown) => refuse(asRenewal(err)),
    ),
    (err: unknown) => refuse(err instanceof CsrRefusal || err instanceof Refusal ? asRenewal(err) : new Refusal('RENEW_ERR_MALFORMED', String(err))),
  );
}

/** SvidRequest is the body of `POST /v1/renew` and `POST /v1/enroll`. */
export interface SvidRequest {
  csr: string;
  ttlSeconds?: number;
  token?: string;
}

/** parseSvidRequest reads the JSON body; throws {@link CsrRefusal} `MALFORMED`. */
export function parseSvidRequest(body: Buffer, expected: string): SvidRequest {
  let request: unknown;
  try {
    request = JSON.parse(body.toString('utf8'));
  } catch {
    throw new CsrRefusal('MALFORMED', `the body must be JSON: ${expected}`);
  }
  const r = request as Partial<SvidRequest> | null;
  if (typeof r !== 'object' || r === null || typeof r.csr !== 'string') throw new CsrRefusal('MALFORMED', `the body must be JSON: ${expected}`);
  if (r.ttlSeconds !== undefined && !(typeof r.ttlSeconds === 'number' && Number.isInteger(r.ttlSeconds) && r.ttlSeconds >= 1)) {
    throw new CsrRefusal('MALFORMED', 'ttlSeconds must be a positive integer');
  }
  if (r.token !== undefined && typeof r.token !== 'string') throw new CsrRefusal('MALFORMED', 'token must be a string');
  return r as SvidRequest;
}

/**
 * readCsr verifies a CSR (P-256 key, signature) and returns the one SPIFFE ID it names, or throws
 * {@link CsrRefusal}. With `want`, that ID must be exactly `want`.
 */
export async function readCsr(csr: string, want?: string): Promise<{ publicKey: KeyObject; id: SpiffeId }> {
  let parsed;
  try {
    parsed = await parseCsr(csr);
  } catch (err) {
    if (err instanceof PkiError && err.code === 'PKI_ERR_CSR_KEY_UNSUPPORTED') throw new CsrRefusal('CSR_KEY', err.message);
    if (err instanceof PkiError && err.code === 'PKI_ERR_CSR_SIGNATURE_INVALID') throw new CsrRefusal('CSR_SIGNATURE', err.message);
    throw new CsrRefusal('MALFORMED', (err as Error).message);
  }
  const asked = parsed.requestedUris;
  const id = asked.length === 1 ? parseId(asked[0] as string) : undefined;
  if (want !== undefined && (id === undefined || id.toString() !== want)) {
    throw new CsrRefusal('ID_MISMATCH', `the CSR must name exactly the authenticated SPIFFE ID ${want}${asked.length === 0 ? ', it names none' : `, not ${asked.join(', ')}`}`);
  }
  if (id === undefined) throw new CsrRefusal('ID_MISMATCH', `the CSR must name exactly one SPIFFE ID${asked.length === 0 ? ', it names none' : `, not ${asked.join(', ')}`}`);
  return { publicKey: parsed.publicKey, id };
}

/** IssuedSvid is what both endpoints answer with. */
export interface IssuedSvid {
  svid: string;
  bundle: string;
  expiresAt: string;
  serial: string;
}

/** signSvid signs `publicKey` as `id` for at most `ttlSeconds`; a signing failure is {@link CsrRefusal} `ISSUER`. */
export async function signSvid(issuer: SvidIssuer, id: SpiffeId, publicKey: KeyObject, ttlSeconds: number): Promise<IssuedSvid> {
  let chain: X509Certificate[];
  try {
    chain = await issuer.sign(id, publicKey, { ttlSeconds });
  } catch (err) {
    throw new CsrRefusal('ISSUER', `the issuer failed: ${(err as Error).message}`);
  }
  const leaf = chain[0] as X509Certificate;
  return { svid: chain.map((c) => c.toString()).join(''), bundle: issuer.bundle.toPem(), expiresAt: new Date(Date.parse(leaf.validTo)).toISOString(), serial: leaf.serialNumber };
}

async function renew(ctx: RenewContext, counter: RenewalCounter, peer: PeerIdentity, body: Buffer): Promise<IssuedSvid> {
  const request = parseSvidRequest(body, '{ "csr": "<PEM>" }');
  const { publicKey } = await readCsr(request.csr, peer.id.toString());
  if (peer.leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new CsrRefusal('KEY_REUSED', 'the CSR must be for a fresh key, not the key of the current certificate');
  }
  if (!counter.take(peer.certSerial, peer.expiresAt.getTime(), Date.now())) {
    throw new Refusal('RENEW_ERR_TOO_MANY', `this certificate was already renewed ${MAX_RENEWALS_PER_CERTIFICATE} times; renew with the new one`);
  }
  return signSvid(ctx.renewal.issuer as SvidIssuer, peer.id, publicKey, Math.min(ctx.renewal.ttlSeconds, request.ttlSeconds ?? Infinity));
}

function parseId(text: string): SpiffeId | undefined {
  try {
    return SpiffeId.parse(text);
  } catch {
    return undefined;
  }
}

/** readBody reads a request body of at most `max` bytes; larger is {@link CsrRefusal} `TOO_LARGE`. */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > max) {
      reject(new CsrRefusal('TOO_LARGE', `the body is larger than ${max} bytes`));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        reject(new CsrRefusal('TOO_LARGE', `the body is larger than ${max} bytes`));
        return;
      }
      parts.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(parts)));
    req.once('error', reject);
  });
}
