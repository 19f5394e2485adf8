import { resolve } from 'node:path';
import { parseDuration } from '@switchboard/guard';
import { SchemaViolation, checkBoolean, checkObject, checkString, type PathSegment } from '../internal/schema.js';
import { MAX_BACKEND_JWT_TTL_SECONDS } from './guard-runtime.js';
import type { PinsOptions } from './pin-runtime.js';

/**
 * relay.yaml keys of policy enforcement (issue 5):
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

/** GuardConfig is the parsed form of those keys. */
export interface GuardConfig {
  pins?: PinsOptions;
  jwtSigner?: JwtSignerOptions;
  watchPolicy: boolean;
}

/** GUARD_CONFIG_KEYS lists the relay.yaml keys {@link parseGuardConfig} reads. */
export const GUARD_CONFIG_KEYS: readonly string[] = Object.freeze(['pins', 'jwtSigner', 'watchPolicy']);

/**
 * parseGuardConfig validates `pins`, `jwtSigner` and `watchPolicy` of a relay.yaml root and
 * resolves their paths against `baseDir`. Throws {@link SchemaViolation} naming the key.
 */
export function parseGuardConfig(root: Record<string, unknown>, baseDir: string): GuardConfig {
  const out: GuardConfig = { watchPolicy: true };
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
