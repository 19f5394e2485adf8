import { request, type RequestOptions } from 'node:https';
import { isIP } from 'node:net';
import type { KeyObject } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BundleSet, IDENTITY_FILES, SpiffeId, TrustBundle, X509Svid, createCsr, enrollmentTokenSubject, newP256Key, parseCertificatesPem, validateX509Svid, writeIdentityFiles, type IdMatcher, type Identity } from '@switchboard/pki';
import { relayIdFor } from './relay-id.js';
import { checkRelayCertificate } from './relay-tls.js';
import type { RelayTls } from './relay-tls.js';

/** RENEW_PATH is the relay's renewal endpoint, under the relay URL's path. */
export const RENEW_PATH = '/v1/renew';

/** ENROLL_PATH is the enrollment endpoint, on the relay's enrollment listener. */
export const ENROLL_PATH = '/v1/enroll';

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
  const { status, text } = await post(url, path, body, { secureContext: tls.secureContext, checkServerIdentity: tls.checkServerIdentity }, options.timeoutMs ?? 15_000);
  return identityFromAnswer(status, text, id, key, tls.identity.bundle);
}

/**
 * renewOverRelays renews at each relay in turn until one answers with a new identity (HA: any
 * relay of the deployment holds the issuer); `onFailure` sees each failed attempt. Throws the
 * last failure when none did.
 */
export async function renewOverRelays(relays: readonly string[], tls: RelayTls, options: RenewOptions & { onFailure?: (relay: string, err: unknown) => void } = {}): Promise<Identity> {
  let last: unknown = new RenewalError('RENEW_ERR_TRANSPORT', 'renewal: no relay configured');
  for (const relay of relays) {
    try {
      return await renewOverRelay(relay, tls, options);
    } catch (err) {
      last = err;
      options.onFailure?.(relay, err);
    }
  }
  throw last;
}

/** EnrollOptions tune {@link enrollWithRelay}. */
export interface EnrollOptions extends RenewOptions {
  /** relayId is the rule the relay's SPIFFE ID must match (default `spiffe://<td>/relay/*`). */
  relayId?: IdMatcher | SpiffeId | string;
}

/**
 * enrollWithRelay gets a workload's first identity from a relay's enrollment listener
 * (`https://host:port`): a fresh P-256 key made here, a CSR for `id`, and the single-use `token`
 * (`switchboard identity token`). The relay is authenticated against `bundle` (the trust domain's
 * public roots, distributed with the token) and the relay rule, as on every dial. The key never
 * leaves this process. Throws {@link RenewalError} with the relay's `ENROLL_ERR_…` code.
 *
 * @example
 * const identity = await enrollWithRelay('https://relay.example.org:8444', token, 'spiffe://example.org/connector/crm', bundle);
 * await writeIdentityFiles('./ids/crm', identity);
 */
export async function enrollWithRelay(enrollUrl: string, token: string, id: SpiffeId | string, bundle: TrustBundle, options: EnrollOptions = {}): Promise<Identity> {
  const sid = typeof id === 'string' ? SpiffeId.parse(id) : id;
  const rule = relayIdFor(options.relayId, sid.trustDomain);
  const key = newP256Key();
  const csr = await createCsr(key, { id: sid });
  const body = JSON.stringify(options.ttlSeconds === undefined ? { token, csr } : { token, csr, ttlSeconds: options.ttlSeconds });
  const url = new URL(enrollUrl);
  if (url.protocol !== 'https:') throw new TypeError(`enroll: the enrollment URL must be https://, not ${url.protocol}`);
  const bundles = new BundleSet([bundle]);
  const untrusted = (message: string, cause?: unknown) => new RenewalError('RENEW_ERR_TRANSPORT', `enroll: the relay's certificate is not acceptable: ${message}`, cause === undefined ? {} : { cause });
  const { status, text } = await post(
    url,
    `${url.pathname.replace(/\/+$/, '')}${ENROLL_PATH}`,
    body,
    { ca: bundle.toPem(), checkServerIdentity: (_host: string, cert: PeerCertificate) => checkRelayCertificate(cert, bundles, rule, options.relayId !== undefined, untrusted) },
    options.timeoutMs ?? 15_000,
  );
  return identityFromAnswer(status, text, sid, key, bundle);
}

/** EnrollSetting is where a first identity comes from: connector.yaml `enroll`, the bridges' `--enroll-*` flags. Paths of files. */
export interface EnrollSetting {
  /** url is the relay's enrollment listener, `https://host:port`. */
  readonly url: string;
  /** token is the file holding the single-use enrollment token. */
  readonly token: string;
  /** bundle is the trust domain's bundle.pem, to authenticate the relay. */
  readonly bundle: string;
}

/**
 * EnrollFileError is an enrollment that could not start: the token or bundle file is unreadable,
 * or the token names no SPIFFE ID. `path` is the file.
 */
export class EnrollFileError extends Error {
  readonly path: string;
  constructor(path: string, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EnrollFileError';
    this.path = path;
  }
}

/**
 * enrollIfEmpty gets the first identity into the identity directory `dir` with the enrollment
 * token when `dir` holds no SVID yet ({@link enrollWithRelay}, then the spiffe-helper layout
 * written atomically) and returns it; an identity already there (enrolled before, renewed since)
 * is kept and `undefined` returned. Throws {@link EnrollFileError} or {@link RenewalError}.
 */
export async function enrollIfEmpty(dir: string, enroll: EnrollSetting, options: EnrollOptions = {}): Promise<Identity | undefined> {
  try {
    await access(join(dir, IDENTITY_FILES.certificates));
    return undefined;
  } catch {
    // No SVID yet: enroll.
  }
  const read = async (path: string): Promise<string> => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new EnrollFileError(path, `enroll: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  };
  const token = (await read(enroll.token)).trim();
  const bundlePem = await read(enroll.bundle);
  let id: SpiffeId;
  try {
    id = enrollmentTokenSubject(token);
  } catch (err) {
    throw new EnrollFileError(enroll.token, `enroll: ${enroll.token}: ${(err as Error).message}`, { cause: err });
  }
  const identity = await enrollWithRelay(enroll.url, token, id, TrustBundle.fromPem(id.trustDomain, bundlePem), options);
  await writeIdentityFiles(dir, identity, { force: true });
  return identity;
}

function identityFromAnswer(status: number, text: string, id: SpiffeId, key: KeyObject, currentBundle: TrustBundle): Identity {
  let answer: { code?: unknown; error?: unknown; svid?: unknown; bundle?: unknown };
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch (err) {
    throw new RenewalError('RENEW_ERR_ANSWER', `renewal: the relay answered HTTP ${status} with a body that is not JSON`, { status, cause: err });
  }
  if (status !== 200) {
    const code = typeof answer.code === 'string' ? answer.code : 'RENEW_ERR_ANSWER';
    throw new RenewalError(code, `the relay refused (HTTP ${status} ${code}): ${typeof answer.error === 'string' ? answer.error.slice(0, 300) : ''}`, { status });
  }
  if (typeof answer.svid !== 'string' || typeof answer.bundle !== 'string') throw new RenewalError('RENEW_ERR_ANSWER', 'renewal: the answer lacks svid or bundle', { status });
  try {
    const chain = parseCertificatesPem(answer.svid, 'svid', 'PKI_ERR_SVID_MALFORMED');
    const bundle = TrustBundle.fromPem(id.trustDomain, answer.bundle);
    const svid = new X509Svid(id, chain, key);
    const validated = validateX509Svid(chain, new BundleSet([bundle]));
    if (!validated.id.equals(id)) throw new Error(`the new SVID names ${validated.id.toString()}, not ${id.toString()}`);
    if (!chain[0]?.checkPrivateKey(key)) throw new Error('the new SVID does not certify the key we sent');
    return { svid, bundle: withJwtAuthorities(bundle, currentBundle) };
  } catch (err) {
    throw new RenewalError('RENEW_ERR_ANSWER', `renewal: the relay's answer is not a valid SVID for ${id.toString()}: ${(err as Error).message}`, { status, cause: err });
  }
}

// The relay hands out X.509 authorities; JWT authorities we already had stay.
function withJwtAuthorities(next: TrustBundle, current: TrustBundle): TrustBundle {
  if (current.jwtAuthorities.size === 0) return next;
  return new TrustBundle({ trustDomain: next.trustDomain, x509Authorities: next.x509Authorities, jwtAuthorities: current.jwtAuthorities.values() });
}

type TlsChoice = { secureContext: RelayTls['secureContext']; checkServerIdentity: RelayTls['checkServerIdentity'] } | { ca: string; checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined };

function post(url: URL, path: string, body: string, tls: TlsChoice, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const options: RequestOptions = {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? 443 : Number(url.port),
      path,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      agent: false,
      // Our SVID and bundle (or, to enroll, the bundle alone), TLS 1.3, and the relay check of every dial.
      ...tls,
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
