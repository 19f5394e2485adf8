import { resolve } from 'node:path';
import { parseDuration } from '@switchboard/guard';
import { SchemaViolation, checkBoolean, checkObject, checkString, type PathSegment } from '../internal/schema.js';

/** MAX_BACKEND_JWT_TTL_SECONDS bounds the lifetime of JWT-SVIDs the relay sends to backends (5 min). */
export const MAX_BACKEND_JWT_TTL_SECONDS = 300;

/** PinsOptions configure tool pinning in the relay (`pins:` in relay.yaml). */
export interface PinsOptions {
  /** path is the pin store file (JSON). With a path, every server is pinned `tofu` unless its policy says otherwise. */
  path: string;
  /** pollMs is how often the approval spool is checked besides file-system events (default 1000). */
  pollMs?: number;
}

/**
 * relay.yaml keys of policy enforcement:
 *
 * ```yaml
 * pins: { path: ./pins.json }                     # tool pinning (tofu by default for every server)
 * jwtSigner: { key: ./pki/jwt_key.pem, ttl: 5m }  # identity to backends (servers.<name>.identityToBackend)
 * watchPolicy: true                               # reload policy.yaml when it changes (default true)
 * ```
 */

/** JwtSignerOptions configure the JWT-SVID signer (`jwtSigner:` in relay.yaml). */
export interface JwtSignerOptions {
  /** key is the trust domain's JWT-SVID signing key (the CA's `jwt_key.pem`), ECDSA P-256 PEM. */
  key: string;
  /** keyId overrides the `kid` (default: the thumbprint the CA publishes in its bundle). */
  keyId?: string;
  /** ttlSeconds is the token lifetime (default and maximum 300). */
  ttlSeconds?: number;
}

/** EnforcementConfig is the parsed form of those keys. */
export interface EnforcementConfig {
  pins?: PinsOptions;
  jwtSigner?: JwtSignerOptions;
  watchPolicy: boolean;
}

/** ENFORCEMENT_CONFIG_KEYS lists the relay.yaml keys {@link parseEnforcementConfig} reads. */
export const ENFORCEMENT_CONFIG_KEYS: readonly string[] = Object.freeze(['pins', 'jwtSigner', 'watchPolicy']);

/**
 * parseEnforcementConfig validates `pins`, `jwtSigner` and `watchPolicy` of a relay.yaml root and
 * resolves their paths against `baseDir`. Throws {@link SchemaViolation} naming the key.
 */
export function parseEnforcementConfig(root: Record<string, unknown>, baseDir: string): EnforcementConfig {
  const out: EnforcementConfig = { watchPolicy: true };
  if (root.pins !== undefined) {
    const p = checkObject(root.pins, ['pins'], ['path'], ['path']);
    out.pins = { path: resolve(baseDir, checkString(p.path, ['pins', 'path'])) };
  }
  if (root.jwtSigner !== undefined) {
    const path: PathSegment[] = ['jwtSigner'];
    const j = checkObject(root.jwtSigner, path, ['key', 'keyId', 'ttl'], ['key']);
    const signer: JwtSignerOptions = { key: resolve(baseDir, checkString(j.key, [...path, 'key'])) };
    if (j.keyId !== undefined) signer.keyId = checkString(j.keyId, [...path, 'keyId']);
    if (j.ttl !== undefined) {
      const ms = typeof j.ttl === 'number' ? j.ttl * 1000 : parseDuration(j.ttl);
      if (ms === undefined || !Number.isInteger(ms / 1000) || ms < 1000 || ms > MAX_BACKEND_JWT_TTL_SECONDS * 1000) {
        throw new SchemaViolation([...path, 'ttl'], `must be a whole number of seconds (or 30s, 5m) from 1s to ${MAX_BACKEND_JWT_TTL_SECONDS}s`);
      }
      signer.ttlSeconds = ms / 1000;
    }
    out.jwtSigner = signer;
  }
  if (root.watchPolicy !== undefined) out.watchPolicy = checkBoolean(root.watchPolicy, ['watchPolicy']);
  return out;
}
