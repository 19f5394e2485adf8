import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { randomBytes, type KeyObject } from 'node:crypto';
import type { CertificateAuthority } from './ca.js';
import { PkiError, type PkiErrorCode } from './errors.js';
import { SpiffeId, TrustDomain } from './spiffe-id.js';

/** DEFAULT_ENROLLMENT_TTL_SECONDS is an enrollment token's lifetime when none is asked for: 15 minutes. */
export const DEFAULT_ENROLLMENT_TTL_SECONDS = 900;
/** MAX_ENROLLMENT_TTL_SECONDS is the longest enrollment token lifetime: one hour. */
export const MAX_ENROLLMENT_TTL_SECONDS = 3600;
/** ENROLLMENT_TOKEN_TYPE is the `typ` header of an enrollment token; a JWT-SVID never carries it. */
export const ENROLLMENT_TOKEN_TYPE = 'switchboard-enroll+jwt';
/** ENROLLMENT_AUDIENCE is the `aud` of every enrollment token. */
export const ENROLLMENT_AUDIENCE = 'switchboard-enrollment';
/**
 * ENROLLMENT_CLOCK_SKEW_SECONDS is the clock difference tolerated between the host that issued a
 * token and the relay that redeems it. A redeemed token stays in the used-token store this much
 * past its `exp`, so the tolerance cannot open a replay window.
 */
export const ENROLLMENT_CLOCK_SKEW_SECONDS = 30;

const ALLOWED_HEADERS = new Set(['alg', 'kid', 'typ']);
const MAX_TOKEN_LENGTH = 8 * 1024;
// jti is 128 random bits, base64url: 22 characters. Accept a little more from other issuers.
const MAX_JTI_LENGTH = 128;

/** EnrollmentTokenOptions configure {@link issueEnrollmentToken}. */
export interface EnrollmentTokenOptions {
  /** ttlSeconds is the token lifetime (default 900, at most 3600). */
  ttlSeconds?: number;
  /** now is the issue time; defaults to the current time. */
  now?: Date;
}

function fail(code: PkiErrorCode, message: string, cause?: unknown): never {
  throw new PkiError(code, `enrollment: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * issueEnrollmentToken mints a single-use bootstrap token bound to `id`, signed ES256 by the CA's
 * enrollment key (never the JWT-SVID key). Claims: `sub` (the ID), `aud`
 * (`switchboard-enrollment`), `iss` (the trust domain's root ID), a random 128-bit `jti`, `iat`
 * and `exp`; header `typ` is `switchboard-enroll+jwt`.
 *
 * @example
 * const token = await issueEnrollmentToken(ca, 'spiffe://example.org/connector/crm', { ttlSeconds: 600 });
 */
export async function issueEnrollmentToken(ca: CertificateAuthority, id: SpiffeId | string, options: EnrollmentTokenOptions = {}): Promise<string> {
  const sid = typeof id === 'string' ? SpiffeId.parse(id) : id;
  ca.checkId(sid);
  const ttl = options.ttlSeconds ?? DEFAULT_ENROLLMENT_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl <= 0) fail('PKI_ERR_TOKEN_INVALID', `TTL must be a positive whole number of seconds, got ${String(ttl)}`);
  if (ttl > MAX_ENROLLMENT_TTL_SECONDS) {
    fail('PKI_ERR_TOKEN_INVALID', `TTL ${ttl}s is over the maximum of ${MAX_ENROLLMENT_TTL_SECONDS}s (1h) for an enrollment token`);
  }
  const iat = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const signer = ca.enrollmentSigner();
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: signer.keyId, typ: ENROLLMENT_TOKEN_TYPE })
    .setSubject(sid.toString())
    .setAudience(ENROLLMENT_AUDIENCE)
    .setIssuer(ca.trustDomain.idString())
    .setJti(randomBytes(16).toString('base64url'))
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .sign(signer.privateKey);
}

/**
 * enrollmentTokenSubject reads the SPIFFE ID an enrollment token names (`sub`) without verifying
 * it: the enrolling side needs it to make its CSR; the relay verifies the token. Throws
 * `PKI_ERR_TOKEN_INVALID` when `token` is not a JWT naming a SPIFFE ID.
 */
export function enrollmentTokenSubject(token: string): SpiffeId {
  let sub: unknown;
  try {
    sub = decodeJwt(token).sub;
  } catch (err) {
    fail('PKI_ERR_TOKEN_INVALID', 'not an enrollment token (a JWT); make one with `switchboard identity token <spiffe-id>`', err);
  }
  try {
    return SpiffeId.parse(String(sub));
  } catch (err) {
    fail('PKI_ERR_TOKEN_INVALID', `the token's sub is not a SPIFFE ID (${(err as Error).message})`, err);
  }
}

/**
 * UsedTokenStore remembers redeemed enrollment tokens so each redeems once. `markUsed` records
 * `jti` until `expiresAt` and returns `false` when it was already recorded.
 */
export interface UsedTokenStore {
  markUsed(jti: string, expiresAt: Date): boolean;
}

/**
 * MemoryUsedTokenStore is an in-process {@link UsedTokenStore}. It stays bounded because an entry
 * is dropped once its token has expired (a token past `exp` fails verification anyway). Replicas
 * of a relay that share an enrollment listener need a shared store instead.
 */
export class MemoryUsedTokenStore implements UsedTokenStore {
  private readonly used = new Map<string, number>();
  private readonly now: () => Date;
  // Earliest expiry in the map, so most calls skip the sweep.
  private nextExpiry = Number.POSITIVE_INFINITY;

  constructor(options: { now?: () => Date } = {}) {
    this.now = options.now ?? (() => new Date());
  }

  /** markUsed records `jti`; `false` means it was recorded before and has not expired. */
  markUsed(jti: string, expiresAt: Date): boolean {
    const nowMs = this.now().getTime();
    this.sweep(nowMs);
    if (this.used.has(jti)) return false;
    const exp = expiresAt.getTime();
    this.used.set(jti, exp);
    if (exp < this.nextExpiry) this.nextExpiry = exp;
    return true;
  }

  /** size is the number of tokens currently remembered. */
  get size(): number {
    this.sweep(this.now().getTime());
    return this.used.size;
  }

  private sweep(nowMs: number): void {
    if (nowMs < this.nextExpiry) return;
    let next = Number.POSITIVE_INFINITY;
    for (const [jti, exp] of this.used) {
      if (exp <= nowMs) this.used.delete(jti);
      else if (exp < next) next = exp;
    }
    this.nextExpiry = next;
  }
}

/**
 * FileUsedTokenStore is a {@link UsedTokenStore} on disk: each redeemed token is appended to a file
 * (one JSON line `{ jti, exp }`, fsynced before the redemption counts), and the file is read back
 * at open, so a token stays spent across restarts. Expired entries are dropped when the file is
 * opened (rewritten atomically). One relay process owns the file; replicas that share an
 * enrollment listener need a shared store (docs/identity.md).
 */
export class FileUsedTokenStore implements UsedTokenStore {
  private readonly memory: MemoryUsedTokenStore;
  private readonly fd: number;

  private constructor(fd: number, memory: MemoryUsedTokenStore) {
    this.fd = fd;
    this.memory = memory;
  }

  /** FileUsedTokenStore.open reads (or creates, mode 0600) the store at `path`. Throws `PKI_ERR_TOKEN_STORE` when it cannot. */
  static open(path: string, options: { now?: () => Date } = {}): FileUsedTokenStore {
    const memory = new MemoryUsedTokenStore(options);
    const now = (options.now ?? (() => new Date()))().getTime();
    const kept: string[] = [];
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new PkiError('PKI_ERR_TOKEN_STORE', `enrollment: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      let e: { jti?: unknown; exp?: unknown };
      try {
        e = JSON.parse(line) as typeof e;
      } catch {
        continue; // a torn last line from a crash: that redemption never answered
      }
      if (typeof e.jti !== 'string' || typeof e.exp !== 'number' || e.exp <= now) continue;
      memory.markUsed(e.jti, new Date(e.exp));
      kept.push(JSON.stringify({ jti: e.jti, exp: e.exp }));
    }
    try {
      const tmp = `${path}.tmp`;
      writeFileSync(tmp, kept.length === 0 ? '' : `${kept.join('\n')}\n`, { mode: 0o600 });
      renameSync(tmp, path);
      const fd = openSync(path, 'a', 0o600);
      return new FileUsedTokenStore(fd, memory);
    } catch (err) {
      throw new PkiError('PKI_ERR_TOKEN_STORE', `enrollment: cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  }

  markUsed(jti: string, expiresAt: Date): boolean {
    if (!this.memory.markUsed(jti, expiresAt)) return false;
    writeSync(this.fd, `${JSON.stringify({ jti, exp: expiresAt.getTime() })}\n`);
    fsyncSync(this.fd);
    return true;
  }

  /** close releases the file. */
  close(): void {
    closeSync(this.fd);
  }
}

/** EnrollmentTokenVerifierOptions configure an {@link EnrollmentTokenVerifier}. */
export interface EnrollmentTokenVerifierOptions {
  /** trustDomain is the only trust domain tokens may name (and whose root ID is `iss`). */
  trustDomain: TrustDomain | string;
  /** publicKey is the CA's enrollment public key (`ca.enrollmentSigner().publicKey`). */
  publicKey: KeyObject;
  /** store remembers redeemed tokens. */
  store: UsedTokenStore;
  /** now is the clock; defaults to the current time. */
  now?: () => Date;
}

/**
 * EnrollmentTokenVerifier redeems enrollment tokens on the enrollment listener: it checks the
 * algorithm (ES256 only), `typ`, signature, `aud`, `iss`, `exp`, that `sub` is a workload ID in
 * the trust domain, and that the token was not redeemed before.
 *
 * @example
 * const verifier = new EnrollmentTokenVerifier({ trustDomain: 'example.org', publicKey, store: new MemoryUsedTokenStore() });
 * const id = await verifier.redeem(token);
 */
export class EnrollmentTokenVerifier {
  private readonly trustDomain: TrustDomain;
  private readonly publicKey: KeyObject;
  private readonly store: UsedTokenStore;
  private readonly now: () => Date;

  constructor(options: EnrollmentTokenVerifierOptions) {
    this.trustDomain = typeof options.trustDomain === 'string' ? TrustDomain.parse(options.trustDomain) : options.trustDomain;
    const key = options.publicKey;
    if (!key || typeof key !== 'object' || key.type !== 'public' || key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new TypeError('enrollment: publicKey must be an ECDSA P-256 public KeyObject');
    }
    if (!options.store || typeof options.store.markUsed !== 'function') {
      throw new TypeError('enrollment: store must implement UsedTokenStore');
    }
    this.publicKey = key;
    this.store = options.store;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * redeem verifies `token` and consumes it, returning the SPIFFE ID it is bound to. With
   * `expectedId`, a token bound to another ID is refused (`PKI_ERR_TOKEN_ID_MISMATCH`) and is
   * not consumed. A second redeem of the same token throws `PKI_ERR_TOKEN_USED`.
   */
  async redeem(token: string, expectedId?: SpiffeId): Promise<SpiffeId> {
    if (typeof token !== 'string' || token.length === 0) fail('PKI_ERR_TOKEN_INVALID', 'token is empty');
    if (token.length > MAX_TOKEN_LENGTH) fail('PKI_ERR_TOKEN_INVALID', `token is longer than ${MAX_TOKEN_LENGTH} characters`);
    let header: Record<string, unknown>;
    try {
      header = decodeProtectedHeader(token) as Record<string, unknown>;
    } catch (err) {
      fail('PKI_ERR_TOKEN_INVALID', 'token is not a JWT', err);
    }
    for (const name of Object.keys(header)) {
      if (!ALLOWED_HEADERS.has(name)) fail('PKI_ERR_TOKEN_INVALID', `header parameter ${JSON.stringify(name)} is not allowed`);
    }
    if (header.alg !== 'ES256') fail('PKI_ERR_TOKEN_INVALID', `algorithm ${JSON.stringify(header.alg ?? null)} is not allowed (only ES256)`);
    if (header.typ !== ENROLLMENT_TOKEN_TYPE) {
      fail('PKI_ERR_TOKEN_INVALID', `typ must be ${JSON.stringify(ENROLLMENT_TOKEN_TYPE)}, got ${JSON.stringify(header.typ ?? null)}: not an enrollment token`);
    }

    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, this.publicKey, {
        algorithms: ['ES256'],
        typ: ENROLLMENT_TOKEN_TYPE,
        audience: ENROLLMENT_AUDIENCE,
        issuer: this.trustDomain.idString(),
        requiredClaims: ['sub', 'jti', 'exp', 'iat'],
        currentDate: this.now(),
        clockTolerance: ENROLLMENT_CLOCK_SKEW_SECONDS,
        // Bounds the life of any token this key signed, whatever its exp says.
        maxTokenAge: MAX_ENROLLMENT_TTL_SECONDS,
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) fail('PKI_ERR_TOKEN_EXPIRED', `token has expired (${err.message})`, err);
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) fail('PKI_ERR_TOKEN_INVALID', 'signature verification failed', err);
      if (err instanceof joseErrors.JOSEError) fail('PKI_ERR_TOKEN_INVALID', err.message, err);
      throw err;
    }

    let id: SpiffeId;
    try {
      id = SpiffeId.parse(claims.sub as string);
    } catch (err) {
      fail('PKI_ERR_TOKEN_INVALID', `sub is not a valid SPIFFE ID (${(err as Error).message})`, err);
    }
    if (!id.memberOf(this.trustDomain)) fail('PKI_ERR_TOKEN_INVALID', `${id.toString()} is outside trust domain "${this.trustDomain.name}"`);
    if (id.isRoot) fail('PKI_ERR_TOKEN_INVALID', 'sub must name a workload (a SPIFFE ID with a path)');
    const jti = claims.jti;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) fail('PKI_ERR_TOKEN_INVALID', 'jti is missing or malformed');
    if (expectedId !== undefined && !expectedId.equals(id)) {
      fail('PKI_ERR_TOKEN_ID_MISMATCH', `token is bound to ${id.toString()}, not ${expectedId.toString()}`);
    }
    const expiresAt = new Date(((claims.exp as number) + ENROLLMENT_CLOCK_SKEW_SECONDS) * 1000);
    if (!this.store.markUsed(jti, expiresAt)) fail('PKI_ERR_TOKEN_USED', 'token has already been redeemed');
    return id;
  }
}
