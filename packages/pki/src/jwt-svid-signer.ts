import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { jwtKeyId } from './ca.js';
import { PkiError } from './errors.js';
import { parsePrivateKeyPem, publicKeyOf } from './internal/crypto.js';
import { DEFAULT_JWT_SVID_TTL_SECONDS, MAX_JWT_SVID_TTL_SECONDS } from './jwt-svid.js';
import { SpiffeId, TrustDomain } from './spiffe-id.js';

/** JwtSvidSignOptions are what one {@link JwtSvidSigner.sign} call needs. */
export interface JwtSvidSignOptions {
  /** subject is the workload the token names; in the signer's trust domain, with a path. */
  subject: SpiffeId | string;
  /** audience is who the token is for. */
  audience: string | readonly string[];
  /** ttlSeconds is the token lifetime (default 300, at most the signer's `maxTtlSeconds`). */
  ttlSeconds?: number;
  /** now is the issue time; defaults to the current time. */
  now?: Date;
}

/**
 * JwtSvidSigner mints JWT-SVIDs synchronously with one ES256 key — what a relay needs to hand a
 * backend a token naming the calling agent without waiting on a promise in its session path. The
 * tokens are what {@link issueJwtSvid} makes (header `{ alg: 'ES256', kid, typ: 'JWT' }`, claims
 * `sub`, `aud`, `exp`, `iat`) and validate with {@link validateJwtSvid} against the bundle that
 * holds the key.
 */
export interface JwtSvidSigner {
  readonly trustDomain: TrustDomain;
  /** keyId is the `kid` in every token (by default the thumbprint the CA uses in bundles). */
  readonly keyId: string;
  /** maxTtlSeconds bounds `ttlSeconds`. */
  readonly maxTtlSeconds: number;
  sign(options: JwtSvidSignOptions): string;
}

/** JwtSvidSignerInit configures {@link createJwtSvidSigner}. */
export interface JwtSvidSignerInit {
  trustDomain: TrustDomain | string;
  /** privateKey is the CA's JWT-SVID key (`jwt_key.pem`): a KeyObject or PEM text. */
  privateKey: KeyObject | string;
  /** keyId overrides the `kid` (default: {@link jwtKeyId} of the public key, as the CA's bundle has it). */
  keyId?: string;
  /** maxTtlSeconds bounds token lifetimes (default and upper bound 3600). */
  maxTtlSeconds?: number;
}

function b64url(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64url');
}

/**
 * createJwtSvidSigner builds a {@link JwtSvidSigner}. Throws `PKI_ERR_CA_UNREADABLE` when the key
 * is not an ECDSA P-256 private key.
 *
 * @example
 * const signer = createJwtSvidSigner({ trustDomain: 'example.org', privateKey: pem });
 * const token = signer.sign({ subject: 'spiffe://example.org/agent/support', audience: 'crm', ttlSeconds: 300 });
 */
export function createJwtSvidSigner(init: JwtSvidSignerInit): JwtSvidSigner {
  const td = typeof init.trustDomain === 'string' ? TrustDomain.parse(init.trustDomain) : init.trustDomain;
  let key: KeyObject;
  try {
    key = typeof init.privateKey === 'string' ? parsePrivateKeyPem(init.privateKey) : init.privateKey;
  } catch (err) {
    throw new PkiError('PKI_ERR_CA_UNREADABLE', 'jwtsvid: the signing key is not a PEM ECDSA P-256 private key', { cause: err });
  }
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new PkiError('PKI_ERR_CA_UNREADABLE', 'jwtsvid: the signing key is not an ECDSA P-256 private key');
  }
  const keyId = init.keyId ?? jwtKeyId(publicKeyOf(key));
  if (typeof keyId !== 'string' || keyId.length === 0 || keyId.length > 128) throw new TypeError('jwtsvid: keyId must be 1–128 characters');
  const maxTtl = init.maxTtlSeconds ?? MAX_JWT_SVID_TTL_SECONDS;
  if (!Number.isInteger(maxTtl) || maxTtl < 1 || maxTtl > MAX_JWT_SVID_TTL_SECONDS) {
    throw new TypeError(`jwtsvid: maxTtlSeconds must be a whole number from 1 to ${MAX_JWT_SVID_TTL_SECONDS}`);
  }
  const header = b64url(JSON.stringify({ alg: 'ES256', kid: keyId, typ: 'JWT' }));
  return Object.freeze({
    trustDomain: td,
    keyId,
    maxTtlSeconds: maxTtl,
    sign(options: JwtSvidSignOptions): string {
      const id = typeof options.subject === 'string' ? SpiffeId.parse(options.subject) : options.subject;
      if (!id.memberOf(td)) {
        throw new PkiError('PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN', `jwtsvid: ${id.toString()} is outside the signer's trust domain "${td.name}"`);
      }
      if (id.isRoot) throw new PkiError('PKI_ERR_SVID_ROOT_PATH', 'jwtsvid: a JWT-SVID must name a workload (a SPIFFE ID with a path)');
      const aud = options.audience;
      if (typeof aud === 'string' ? aud.length === 0 : !Array.isArray(aud) || aud.length === 0 || aud.some((a) => typeof a !== 'string' || a.length === 0)) {
        throw new TypeError('jwtsvid: audience must be a non-empty string or a non-empty list of them');
      }
      const ttl = options.ttlSeconds ?? Math.min(DEFAULT_JWT_SVID_TTL_SECONDS, maxTtl);
      if (!Number.isInteger(ttl) || ttl <= 0 || ttl > maxTtl) {
        throw new PkiError('PKI_ERR_JWT_TTL_TOO_LONG', `jwtsvid: TTL must be a whole number of seconds from 1 to ${maxTtl}, got ${String(ttl)}`);
      }
      const iat = Math.floor((options.now ?? new Date()).getTime() / 1000);
      const payload = b64url(JSON.stringify({ sub: id.toString(), aud: typeof aud === 'string' ? aud : [...aud], iat, exp: iat + ttl }));
      const input = `${header}.${payload}`;
      const sig = cryptoSign('sha256', Buffer.from(input, 'ascii'), { key, dsaEncoding: 'ieee-p1363' });
      return `${input}.${sig.toString('base64url')}`;
    },
  });
}

/**
 * loadJwtSvidSigner reads a PEM key file (a CA's `jwt_key.pem`) and builds a signer. Throws
 * `PKI_ERR_CA_UNREADABLE` when the file cannot be read or holds no ECDSA P-256 private key.
 */
export async function loadJwtSvidSigner(path: string, init: Omit<JwtSvidSignerInit, 'privateKey'>): Promise<JwtSvidSigner> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    throw new PkiError('PKI_ERR_CA_UNREADABLE', `jwtsvid: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  try {
    return createJwtSvidSigner({ ...init, privateKey: pem });
  } catch (err) {
    if (err instanceof PkiError) throw new PkiError(err.code, `jwtsvid: ${path}: ${err.message.replace(/^jwtsvid: /, '')}`, { cause: err });
    throw err;
  }
}
