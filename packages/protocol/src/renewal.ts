import { request, type RequestOptions } from 'node:https';
import { isIP } from 'node:net';
import { BundleSet, TrustBundle, X509Svid, createCsr, newP256Key, parseCertificatesPem, validateX509Svid, type Identity } from '@switchboard/pki';
import type { RelayTls } from './relay-tls.js';

/** RENEW_PATH is the relay's renewal endpoint, under the relay URL's path. */
export const RENEW_PATH = '/v1/renew';

const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * RenewalError is a renewal that did not produce an identity: `code` is the relay's `RENEW_ERR_…`
 * code, or `RENEW_ERR_TRANSPORT` (no answer) / `RENEW_ERR_ANSWER` (an answer we refuse);
 * `status` the HTTP status when there was one.
 */
export class RenewalError extends Error {
  readonly code: string;
  readonly status: number | undefined;
  constructor(code: string, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RenewalError';
    this.code = code;
    this.status = options.status;
  }
}

/** RenewOptions tune {@link renewOverRelay}. */
export interface RenewOptions {
  /** ttlSeconds asks for a shorter lifetime than the relay's default (it never grants longer). */
  ttlSeconds?: number;
  /** timeoutMs bounds the whole exchange (default 15 s). */
  timeoutMs?: number;
}

/**
 * renewOverRelay renews `tls.identity` at the relay `relayUrl` (`wss://host:port[/prefix]`): it makes
 * a fresh P-256 key here, sends a CSR for our own SPIFFE ID over mutual TLS authenticated by the
 * current SVID (the relay checked as by every dial: bundle, SVID rules, relay rule), and returns the
 * new identity — after checking the new SVID names us, holds our new key and validates against the
 * bundle that came with it. The key never leaves this process.
 *
 * @example
 * const next = await renewOverRelay('wss://relay.example.org:8443', tls);
 * await writeIdentityFiles(dir, next, { force: true });
 */
export async function renewOverRelay(relayUrl: string, tls: RelayTls, options: RenewOptions = {}): Promise<Identity> {
  const id = tls.identity.svid.id;
  const key = newP256Key();
  const csr = await createCsr(key, { id });
  const body = JSON.stringify(options.ttlSeconds === undefined ? { csr } : { csr, ttlSeconds: options.ttlSeconds });
  const url = new URL(relayUrl);
  const path = `${url.pathname.replace(/\/+$/, '')}${RENEW_PATH}`;
  const { status, text } = await post(url, path, body, tls, options.timeoutMs ?? 15_000);
  let answer: { code?: unknown; error?: unknown; svid?: unknown; bundle?: unknown };
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch (err) {
    throw new RenewalError('RENEW_ERR_ANSWER', `renewal: the relay answered HTTP ${status} with a body that is not JSON`, { status, cause: err });
  }
  if (status !== 200) {
    const code = typeof answer.code === 'string' ? answer.code : 'RENEW_ERR_ANSWER';
    throw new RenewalError(code, `renewal: the relay refused (HTTP ${status} ${code}): ${typeof answer.error === 'string' ? answer.error.slice(0, 300) : ''}`, { status });
  }
  if (typeof answer.svid !== 'string' || typeof answer.bundle !== 'string') throw new RenewalError('RENEW_ERR_ANSWER', 'renewal: the answer lacks svid or bundle', { status });
  try {
    const chain = parseCertificatesPem(answer.svid, 'svid', 'PKI_ERR_SVID_MALFORMED');
    const bundle = TrustBundle.fromPem(id.trustDomain, answer.bundle);
    const svid = new X509Svid(id, chain, key);
    const validated = validateX509Svid(chain, new BundleSet([bundle]));
    if (!validated.id.equals(id)) throw new Error(`the new SVID names ${validated.id.toString()}, not ${id.toString()}`);
    if (!chain[0]?.checkPrivateKey(key)) throw new Error('the new SVID does not certify the key we sent');
    return { svid, bundle: withJwtAuthorities(bundle, tls.identity.bundle) };
  } catch (err) {
    throw new RenewalError('RENEW_ERR_ANSWER', `renewal: the relay's answer is not a valid SVID for ${id.toString()}: ${(err as Error).message}`, { status, cause: err });
  }
}

// The relay hands out X.509 authorities; JWT authorities we already had stay.
function withJwtAuthorities(next: TrustBundle, current: TrustBundle): TrustBundle {
  if (current.jwtAuthorities.size === 0) return next;
  return new TrustBundle({ trustDomain: next.trustDomain, x509Authorities: next.x509Authorities, jwtAuthorities: current.jwtAuthorities.values() });
}

function post(url: URL, path: string, body: string, tls: RelayTls, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const options: RequestOptions & { secureContext: RelayTls['secureContext'] } = {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? 443 : Number(url.port),
      path,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      agent: false,
      // Our SVID and bundle, TLS 1.3, and the relay check of every dial (bundle, SVID rules, relay rule).
      secureContext: tls.secureContext,
      checkServerIdentity: tls.checkServerIdentity,
      minVersion: 'TLSv1.3',
      rejectUnauthorized: true,
      ...(isIP(url.hostname.replace(/^\[|\]$/g, '')) ? {} : { servername: url.hostname }),
      timeout: timeoutMs,
    };
    const req = request(options as RequestOptions, (res) => {
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) {
          req.destroy(new RenewalError('RENEW_ERR_ANSWER', `renewal: the answer is larger than ${MAX_ANSWER_BYTES} bytes`));
          return;
        }
        parts.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(new RenewalError('RENEW_ERR_TRANSPORT', `renewal: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', (err) => reject(err instanceof RenewalError ? err : new RenewalError('RENEW_ERR_TRANSPORT', `renewal: ${(err as Error).message}`, { cause: err })));
    req.end(body);
  });
}
