import { resolve } from 'node:path';
import { parseDuration } from '@switchboard/guard';
import { SchemaViolation, boolean, object, string, z } from '@switchboard/common/config';

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

/** enforcementConfigShape is the relay.yaml keys of policy enforcement (part of the relay.yaml schema). */
export const enforcementConfigShape = {
  pins: object({ path: string() }).optional(),
  jwtSigner: object({ key: string(), keyId: string().optional(), ttl: z.unknown().optional() }).optional(),
  watchPolicy: boolean().optional(),
};

type EnforcementSection = { [K in keyof typeof enforcementConfigShape]?: z.output<(typeof enforcementConfigShape)[K]> };

/**
 * enforcementConfig completes the validated `pins`, `jwtSigner` and `watchPolicy` keys: paths
 * resolved against `baseDir`, the JWT lifetime checked. Throws {@link SchemaViolation} naming the key.
 */
export function enforcementConfig(root: EnforcementSection, baseDir: string): EnforcementConfig {
  const out: EnforcementConfig = { watchPolicy: root.watchPolicy ?? true };
  if (root.pins !== undefined) out.pins = { path: resolve(baseDir, root.pins.path) };
  const j = root.jwtSigner;
  if (j !== undefined) {
    const signer: JwtSignerOptions = { key: resolve(baseDir, j.key) };
    if (j.keyId !== undefined) signer.keyId = j.keyId;
    if (j.ttl !== undefined) {
      const ms = typeof j.ttl === 'number' ? j.ttl * 1000 : typeof j.ttl === 'string' ? parseDuration(j.ttl) : undefined;
      if (ms === undefined || !Number.isInteger(ms / 1000) || ms < 1000 || ms > MAX_BACKEND_JWT_TTL_SECONDS * 1000) {
        throw new SchemaViolation(['jwtSigner', 'ttl'], `must be a whole number of seconds (or 30s, 5m) from 1s to ${MAX_BACKEND_JWT_TTL_SECONDS}s`);
      }
      signer.ttlSeconds = ms / 1000;
    }
    out.jwtSigner = signer;
  }
  return out;
}
