import { resolve } from 'node:path';
import { SchemaViolation, object, string, z } from '@switchboard/common/config';
import { parseDuration } from '@switchboard/guard';
import type { KeyObject } from 'node:crypto';
import { DEFAULT_SVID_TTL_SECONDS, MAX_SVID_TTL_SECONDS, type SvidIssuer, type UsedTokenStore } from '@switchboard/pki';

/**
 * relay.yaml's `renewal` section: the relay renews workload SVIDs on `POST /v1/renew`.
 *
 * ```yaml
 * renewal:
 *   issuer: ./issuer   # intermediate.pem, intermediate_key.pem, bundle.pem (copied from the CA directory; no root key)
 *   ttl: 1h            # lifetime of a renewed SVID (default 1h, at most 24h)
 * ```
 */
export const renewalSchema = object({ issuer: string(), ttl: z.unknown().optional() });

/** RenewalConfig is the `renewal` section after validation. */
export interface RenewalConfig {
  /** issuer is the issuer directory (absolute). */
  issuer: string;
  ttlSeconds: number;
}

/** RenewalSetting is startRelay's `renewal` option: relay.yaml's section, or an issuer in memory. */
export interface RenewalSetting {
  issuer: string | SvidIssuer;
  /** ttlSeconds is the lifetime of a renewed SVID (default 1 h, at most 24 h). */
  ttlSeconds?: number;
}

/** renewalConfig completes a validated `renewal` section; throws {@link SchemaViolation} for a bad `ttl`. */
export function renewalConfig(section: z.output<typeof renewalSchema>, baseDir: string): RenewalConfig {
  return { issuer: resolve(baseDir, section.issuer), ttlSeconds: renewalTtl(section.ttl, ['renewal', 'ttl']) };
}

/** renewalTtl reads a TTL written as seconds or a duration (`90s`, `1h`), from 1 s to 24 h. */
export function renewalTtl(ttl: unknown, path: readonly (string | number)[]): number {
  if (ttl === undefined) return DEFAULT_SVID_TTL_SECONDS;
  const ms = typeof ttl === 'number' ? ttl * 1000 : typeof ttl === 'string' ? parseDuration(ttl) : undefined;
  if (ms === undefined || !Number.isInteger(ms / 1000) || ms < 1000 || ms > MAX_SVID_TTL_SECONDS * 1000) {
    throw new SchemaViolation(path, `must be a whole number of seconds (or 90s, 1h) from 1s to ${MAX_SVID_TTL_SECONDS / 3600}h`);
  }
  return ms / 1000;
}

/**
 * relay.yaml's `enrollment` section: a separate listener where a new workload exchanges a
 * single-use enrollment token for its first SVID (needs `renewal.issuer`).
 *
 * ```yaml
 * enrollment:
 *   listen: 0.0.0.0:8444
 *   publicKey: ./issuer/enrollment_pub.pem   # the CA's enrollment public key (openssl pkey -pubout)
 *   usedTokens: ./enrollment-used.jsonl      # redeemed tokens, kept across restarts
 * ```
 */
export const enrollmentSchema = object({ listen: string(), publicKey: string(), usedTokens: string() });

/** EnrollmentSetting is startRelay's `enrollment` option. */
export interface EnrollmentSetting {
  /** listen is `host:port` of the enrollment listener (server TLS only). */
  listen: string;
  /** publicKey is the CA's enrollment public key (a PEM file, a private key PEM works too), or the key. */
  publicKey: string | KeyObject;
  /** usedTokens is the redeemed-token file (a {@link FileUsedTokenStore}) or a store. */
  usedTokens: string | UsedTokenStore;
}

/** enrollmentConfig resolves the section's paths against `baseDir`. */
export function enrollmentConfig(section: z.output<typeof enrollmentSchema>, baseDir: string): EnrollmentSetting {
  return { listen: section.listen, publicKey: resolve(baseDir, section.publicKey), usedTokens: resolve(baseDir, section.usedTokens) };
}

