import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@switchboard/common';
import { PkiError, type EnrollmentTokenVerifier, type SpiffeId } from '@switchboard/pki';
import type { AuditSink } from '../audit/sink.js';
import type { RelayMetrics } from '../metrics.js';
import type { PolicyStore } from '../policy/store.js';
import { CsrRefusal, MAX_RENEW_BODY_BYTES, parseSvidRequest, readBody, readCsr, signSvid, type RenewalOptions } from './renew.js';

/** ENROLL_PATH is where a new workload gets its first SVID, on the enrollment listener. */
export const ENROLL_PATH = '/v1/enroll';

/** EnrollErrorCode is the `code` of a refused enrollment (docs/errors.md). */
export type EnrollErrorCode =
  | 'ENROLL_ERR_METHOD'
  | 'ENROLL_ERR_NOT_FOUND'
  | 'ENROLL_ERR_MALFORMED'
  | 'ENROLL_ERR_TOO_LARGE'
  | 'ENROLL_ERR_CSR_KEY'
  | 'ENROLL_ERR_CSR_SIGNATURE'
  | 'ENROLL_ERR_ID_MISMATCH'
  | 'ENROLL_ERR_KEY_REUSED'
  | 'ENROLL_ERR_TOKEN_INVALID'
  | 'ENROLL_ERR_TOKEN_EXPIRED'
  | 'ENROLL_ERR_TOKEN_USED'
  | 'ENROLL_ERR_REVOKED'
  | 'ENROLL_ERR_ISSUER';

const STATUS: Record<EnrollErrorCode, number> = {
  ENROLL_ERR_METHOD: 405,
  ENROLL_ERR_NOT_FOUND: 404,
  ENROLL_ERR_MALFORMED: 400,
  ENROLL_ERR_TOO_LARGE: 413,
  ENROLL_ERR_CSR_KEY: 400,
  ENROLL_ERR_CSR_SIGNATURE: 400,
  ENROLL_ERR_ID_MISMATCH: 403,
  ENROLL_ERR_KEY_REUSED: 400,
  ENROLL_ERR_TOKEN_INVALID: 401,
  ENROLL_ERR_TOKEN_EXPIRED: 401,
  ENROLL_ERR_TOKEN_USED: 409,
  ENROLL_ERR_REVOKED: 403,
  ENROLL_ERR_ISSUER: 503,
};

/** EnrollContext is what the enrollment endpoint needs from the relay. */
export interface EnrollContext {
  readonly renewal: RenewalOptions;
  readonly verifier: EnrollmentTokenVerifier;
  readonly policy: PolicyStore;
  readonly audit: AuditSink;
  readonly metrics: RelayMetrics;
  readonly logger: Logger;
}

class Refusal extends Error {
  constructor(
    readonly code: EnrollErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_CODES: Partial<Record<string, EnrollErrorCode>> = {
  PKI_ERR_TOKEN_EXPIRED: 'ENROLL_ERR_TOKEN_EXPIRED',
  PKI_ERR_TOKEN_USED: 'ENROLL_ERR_TOKEN_USED',
  PKI_ERR_TOKEN_ID_MISMATCH: 'ENROLL_ERR_ID_MISMATCH',
};

/**
 * handleEnroll answers `POST /v1/enroll` on the enrollment listener (server TLS only: the caller has
 * no SVID yet). Body `{ "token", "csr" }`: a single-use enrollment token (`switchboard identity
 * token`) and a CSR for a key made on the caller's host, naming the token's SPIFFE ID. The CSR is
 * checked first, then the token is redeemed for exactly that ID (a token for another ID is refused
 * and not spent), then the policy (a revoked ID gets nothing). Answer as `POST /v1/renew`. Every
 * answer is audited (`identity.enroll`).
 */
export function handleEnroll(ctx: EnrollContext, req: IncomingMessage, res: ServerResponse): void {
  const remote = req.socket.remoteAddress ?? '';
  let named: SpiffeId | undefined;
  const answer = (status: number, body: object): void => {
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...(status === 200 ? {} : { connection: 'close' }) }).end(text);
  };
  const refuse = (err: Refusal): void => {
    ctx.metrics.enrollments.set(err.code, (ctx.metrics.enrollments.get(err.code) ?? 0) + 1);
    ctx.audit.write({ type: 'identity.enroll', peer: named?.toString() ?? null, issued: false, newCertSerial: null, notAfter: null, code: err.code, reason: err.message, remote });
    ctx.logger.info({ peer: named?.toString(), code: err.code, reason: err.message }, 'enrollment refused');
    if (err.code === 'ENROLL_ERR_METHOD') res.setHeader('allow', 'POST');
    answer(STATUS[err.code], { code: err.code, error: err.message });
    req.resume();
  };
  const path = (req.url ?? '').split('?')[0];
  if (path !== ENROLL_PATH) return refuse(new Refusal('ENROLL_ERR_NOT_FOUND', 'the enrollment listener serves POST /v1/enroll only'));
  if (req.method !== 'POST') return refuse(new Refusal('ENROLL_ERR_METHOD', 'enrollment is POST /v1/enroll'));
  const run = async (): Promise<void> => {
    const request = parseSvidRequest(await readBody(req, MAX_RENEW_BODY_BYTES), '{ "token": "<enrollment token>", "csr": "<PEM>" }');
    if (request.token === undefined) throw new CsrRefusal('MALFORMED', 'the body must carry the enrollment token: { "token", "csr" }');
    const { id, publicKey } = await readCsr(request.csr);
    named = id;
    try {
      await ctx.verifier.redeem(request.token, id);
    } catch (err) {
      if (err instanceof PkiError) throw new Refusal(TOKEN_CODES[err.code] ?? 'ENROLL_ERR_TOKEN_INVALID', err.message);
      throw err;
    }
    if (ctx.policy.identity({ id, certSerial: '' }).revoked !== undefined) throw new Refusal('ENROLL_ERR_REVOKED', 'this identity has been revoked');
    const issued = await signSvid(ctx.renewal.issuer as NonNullable<RenewalOptions['issuer']>, id, publicKey, Math.min(ctx.renewal.ttlSeconds, request.ttlSeconds ?? Infinity));
    ctx.metrics.enrollments.set('issued', (ctx.metrics.enrollments.get('issued') ?? 0) + 1);
    ctx.audit.write({ type: 'identity.enroll', peer: id.toString(), issued: true, newCertSerial: issued.serial, notAfter: issued.expiresAt, code: null, reason: 'issued', remote });
    ctx.logger.info({ peer: id.toString(), expiresAt: issued.expiresAt }, 'workload enrolled');
    answer(200, { spiffeId: id.toString(), svid: issued.svid, bundle: issued.bundle, expiresAt: issued.expiresAt });
  };
  run().catch((err: unknown) => {
    if (err instanceof Refusal) return refuse(err);
    if (err instanceof CsrRefusal) return refuse(new Refusal(`ENROLL_ERR_${err.kind}`, err.message));
    refuse(new Refusal('ENROLL_ERR_ISSUER', `enrollment failed: ${(err as Error).message}`));
  });
}
