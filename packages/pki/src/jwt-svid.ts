import { compactVerify, decodeProtectedHeader, errors as joseErrors, SignJWT, type ProtectedHeaderParameters } from 'jose';
import type { KeyObject } from 'node:crypto';
import type { CertificateAuthority } from './ca.js';
import { PkiError, type PkiErrorCode } from './errors.js';
import { SpiffeId } from './spiffe-id.js';
import type { BundleSource } from './trust-bundle.js';

/** DEFAULT_JWT_SVID_TTL_SECONDS is the lifetime of a JWT-SVID when none is asked for: five minutes. */
export const DEFAULT_JWT_SVID_TTL_SECONDS = 300;
/** MAX_JWT_SVID_TTL_SECONDS is the longest JWT-SVID lifetime {@link issueJwtSvid} accepts: one hour. */
export const MAX_JWT_SVID_TTL_SECONDS = 3600;
/** DEFAULT_JWT_LEEWAY_SECONDS is the clock skew {@link validateJwtSvid} tolerates on `exp`, `nbf` and `iat`. */
export const DEFAULT_JWT_LEEWAY_SECONDS = 30;
/** MAX_JWT_LEEWAY_SECONDS bounds the leeway a caller may configure. */
export const MAX_JWT_LEEWAY_SECONDS = 60;

/**
 * JWT_SVID_ALGORITHMS lists the `alg` values the JWT-SVID spec (§3.1) allows. `none`, the HMAC
 * family and everything else are refused before any key is looked at.
 */
export const JWT_SVID_ALGORITHMS: readonly string[] = Object.freeze([
  'RS256', 'RS384', 'RS512',
  'ES256', 'ES384', 'ES512',
  'PS256', 'PS384', 'PS512',
]);

const ALLOWED = new Set(JWT_SVID_ALGORITHMS);
const ALLOWED_HEADERS = new Set(['alg', 'kid', 'typ']);
// A JWT-SVID is a few hundred bytes; the cap keeps a hostile peer from making us decode megabytes.
const MAX_TOKEN_LENGTH = 16 * 1024;

/** JwtSvidIssueOptions configure {@link issueJwtSvid}. */
export interface JwtSvidIssueOptions {
  /** subject is the workload the token names; it must be in the CA's trust domain, with a path. */
  subject: SpiffeId | string;
  /** audience is who the token is for: one value or several. */
  audience: string | readonly string[];
  /** ttlSeconds is the token lifetime (default 300, at most 3600). */
  ttlSeconds?: number;
  /** now is the issue time; defaults to the current time. */
  now?: Date;
}

/** JwtSvidValidateOptions configure {@link validateJwtSvid}. */
export interface JwtSvidValidateOptions {
  /** audience is the validator's own identity; the token's `aud` must contain it. */
  audience: string;
  /** now is the time to validate at; defaults to the current time. */
  now?: Date;
  /** leewaySeconds tolerates clocks this far apart on `exp`, `nbf` and `iat` (default 30, at most 60). */
  leewaySeconds?: number;
}

/** ValidatedJwtSvid is what a successful {@link validateJwtSvid} proves. */
export interface ValidatedJwtSvid {
  /** id is the SPIFFE ID of the workload that presented the token (`sub`). */
  id: SpiffeId;
  /** audience is the token's `aud`, always as a list. */
  audience: string[];
  /** expiresAt is `exp`. */
  expiresAt: Date;
  /** claims is the whole verified claims set. */
  claims: Record<string, unknown>;
}

function fail(code: PkiErrorCode, message: string, cause?: unknown): never {
  throw new PkiError(code, `jwtsvid: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * issueJwtSvid mints a JWT-SVID for `subject`, signed ES256 by the CA's JWT key. The protected
 * header is exactly `{ alg, kid, typ: 'JWT' }`; the claims are `sub`, `aud`, `exp` and `iat`.
 *
 * @example
 * const token = await issueJwtSvid(ca, { subject: 'spiffe://example.org/agent/support', audience: 'crm' });
 */
export async function issueJwtSvid(ca: CertificateAuthority, options: JwtSvidIssueOptions): Promise<string> {
  const id = typeof options.subject === 'string' ? SpiffeId.parse(options.subject) : options.subject;
  ca.checkId(id);
  const audience = checkAudience(options.audience);
  const ttl = options.ttlSeconds ?? DEFAULT_JWT_SVID_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl <= 0) {
    throw new PkiError('PKI_ERR_JWT_TTL_TOO_LONG', `jwtsvid: TTL must be a positive whole number of seconds, got ${String(ttl)}`);
  }
  if (ttl > MAX_JWT_SVID_TTL_SECONDS) {
    throw new PkiError('PKI_ERR_JWT_TTL_TOO_LONG', `jwtsvid: TTL ${ttl}s is over the maximum of ${MAX_JWT_SVID_TTL_SECONDS}s (1h)`);
  }
  const iat = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const signer = ca.jwtSigner();
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: signer.keyId, typ: 'JWT' })
    .setSubject(id.toString())
    .setAudience(audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .sign(signer.privateKey);
}

function checkAudience(audience: unknown): string | string[] {
  if (typeof audience === 'string') {
    if (audience.length === 0) throw new TypeError('jwtsvid: audience must not be empty');
    return audience;
  }
  if (!Array.isArray(audience) || audience.length === 0) {
    throw new TypeError('jwtsvid: audience must be a non-empty string or a non-empty list of them');
  }
  for (const a of audience) {
    if (typeof a !== 'string' || a.length === 0) throw new TypeError('jwtsvid: every audience must be a non-empty string');
  }
  return [...(audience as string[])];
}

/**
 * validateJwtSvid authenticates a JWT-SVID per the SPIFFE JWT-SVID spec. In order: the protected
 * header (`alg` on the allowlist, only `alg`/`kid`/`typ`, `typ` `JWT` or `JOSE`, `kid` present),
 * `sub` (a SPIFFE ID naming a workload), the key (`kid` in the JWT authorities of `sub`'s trust
 * domain), the signature (pinned to the header's `alg`), then `exp` (required), `nbf`/`iat` and
 * `aud`. Each failure is a {@link PkiError} with the code of the rule broken.
 *
 * @example
 * const { id } = await validateJwtSvid(token, bundles, { audience: 'crm' });
 */
export async function validateJwtSvid(token: string, bundles: BundleSource, options: JwtSvidValidateOptions): Promise<ValidatedJwtSvid> {
  if (typeof options.audience !== 'string' || options.audience.length === 0) {
    throw new TypeError('jwtsvid: options.audience must be a non-empty string');
  }
  const leeway = options.leewaySeconds ?? DEFAULT_JWT_LEEWAY_SECONDS;
  if (!(Number.isFinite(leeway) && leeway >= 0 && leeway <= MAX_JWT_LEEWAY_SECONDS)) {
    throw new TypeError(`jwtsvid: leewaySeconds must be between 0 and ${MAX_JWT_LEEWAY_SECONDS}`);
  }
  const nowMs = (options.now ?? new Date()).getTime();
  if (!Number.isFinite(nowMs)) throw new TypeError('jwtsvid: options.now is not a valid date');

  if (typeof token !== 'string') fail('PKI_ERR_JWT_MALFORMED', 'token must be a string');
  if (token.length > MAX_TOKEN_LENGTH) fail('PKI_ERR_JWT_MALFORMED', `token is longer than ${MAX_TOKEN_LENGTH} characters`);
  const parts = token.split('.');
  // An empty signature is left for the checks below: `alg: none` must be refused by name.
  if (parts.length !== 3 || (parts[0] as string).length === 0 || (parts[1] as string).length === 0) {
    fail('PKI_ERR_JWT_MALFORMED', 'token is not a JWS in compact serialization (header.payload.signature)');
  }

  // 1. Header, before anything else: the algorithm first, so `none` and HMAC never get further.
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch (err) {
    fail('PKI_ERR_JWT_MALFORMED', 'protected header is not a base64url-encoded JSON object', err);
  }
  const alg = header.alg;
  if (typeof alg !== 'string' || !ALLOWED.has(alg)) {
    fail('PKI_ERR_JWT_ALG_NOT_ALLOWED', `algorithm ${JSON.stringify(alg ?? null)} is not allowed (allowed: ${JWT_SVID_ALGORITHMS.join(', ')})`);
  }
  for (const name of Object.keys(header)) {
    if (!ALLOWED_HEADERS.has(name)) fail('PKI_ERR_JWT_HEADER_NOT_ALLOWED', `header parameter ${JSON.stringify(name)} is not allowed (only alg, kid, typ)`);
  }
  if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'JOSE') {
    fail('PKI_ERR_JWT_TYP_INVALID', `typ must be "JWT" or "JOSE", got ${JSON.stringify(header.typ)}`);
  }
  const kid = header.kid;
  if (typeof kid !== 'string' || kid.length === 0) fail('PKI_ERR_JWT_KID_MISSING', 'header has no kid');

  // 2. The subject picks the trust domain, whose bundle holds the key.
  const unverified = parseClaims(Buffer.from(parts[1] as string, 'base64url').toString('utf8'));
  const sub = unverified.sub;
  if (typeof sub !== 'string') fail('PKI_ERR_JWT_SUB_INVALID', 'sub claim is missing or not a string');
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(sub);
  } catch (err) {
    fail('PKI_ERR_JWT_SUB_INVALID', `sub is not a valid SPIFFE ID (${(err as Error).message})`, err);
  }
  if (id.isRoot) fail('PKI_ERR_JWT_SUB_INVALID', 'sub must name a workload (a SPIFFE ID with a path)');
  const bundle = bundles.getBundle(id.trustDomain);
  if (!bundle) fail('PKI_ERR_BUNDLE_NOT_FOUND', `no trust bundle for trust domain "${id.trustDomain.name}"`);
  const authority = bundle.jwtAuthorities.get(kid);
  if (!authority) fail('PKI_ERR_JWT_KEY_NOT_FOUND', `no JWT authority with kid ${JSON.stringify(kid)} in the bundle of "${id.trustDomain.name}"`);

  // 3. Signature, pinned to the one algorithm already allowed.
  const claims = await verifySignature(token, authority.publicKey, alg);

  // 4. Claims, only once they are authentic.
  const now = Math.floor(nowMs / 1000);
  const exp = numericDate(claims, 'exp');
  if (exp === undefined) fail('PKI_ERR_JWT_EXP_MISSING', 'exp claim is required');
  if (exp <= now - leeway) fail('PKI_ERR_JWT_EXPIRED', `token expired at ${new Date(exp * 1000).toISOString()}`);
  const nbf = numericDate(claims, 'nbf');
  if (nbf !== undefined && nbf > now + leeway) fail('PKI_ERR_JWT_NOT_YET_VALID', `token is not valid before ${new Date(nbf * 1000).toISOString()} (nbf)`);
  const iat = numericDate(claims, 'iat');
  if (iat !== undefined && iat > now + leeway) fail('PKI_ERR_JWT_NOT_YET_VALID', `token was issued in the future, at ${new Date(iat * 1000).toISOString()} (iat)`);
  const aud = claims.aud;
  if (aud === undefined) fail('PKI_ERR_JWT_AUD_MISMATCH', 'aud claim is required');
  const audience = typeof aud === 'string' ? [aud] : aud;
  if (!Array.isArray(audience) || audience.some((a) => typeof a !== 'string')) {
    fail('PKI_ERR_JWT_MALFORMED', 'aud must be a string or a list of strings');
  }
  if (!audience.includes(options.audience)) {
    fail('PKI_ERR_JWT_AUD_MISMATCH', `token audience ${JSON.stringify(audience)} does not include ${JSON.stringify(options.audience)}`);
  }
  return { id, audience: [...(audience as string[])], expiresAt: new Date(exp * 1000), claims };
}

function parseClaims(json: string): Record<string, unknown> {
  let claims: unknown;
  try {
    claims = JSON.parse(json);
  } catch (err) {
    fail('PKI_ERR_JWT_MALFORMED', 'payload is not a base64url-encoded JSON object', err);
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    fail('PKI_ERR_JWT_MALFORMED', 'payload is not a JSON object');
  }
  return claims as Record<string, unknown>;
}

async function verifySignature(token: string, key: KeyObject, alg: string): Promise<Record<string, unknown>> {
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(token, key, { algorithms: [alg] }));
  } catch (err) {
    if (err instanceof joseErrors.JWSInvalid) fail('PKI_ERR_JWT_MALFORMED', `token is not a valid JWS (${err.message})`, err);
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) fail('PKI_ERR_JWT_SIGNATURE_INVALID', 'signature verification failed', err);
    // A key that does not fit the algorithm (an EC key for RS256, a P-256 key for ES384) cannot
    // have made the signature either.
    fail('PKI_ERR_JWT_SIGNATURE_INVALID', `signature cannot be verified with key for alg ${alg} (${(err as Error).message})`, err);
  }
  return parseClaims(Buffer.from(payload).toString('utf8'));
}

function numericDate(claims: Record<string, unknown>, name: 'exp' | 'nbf' | 'iat'): number | undefined {
  const v = claims[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail('PKI_ERR_JWT_MALFORMED', `${name} must be a NumericDate (seconds since the epoch)`);
  return v;
}
