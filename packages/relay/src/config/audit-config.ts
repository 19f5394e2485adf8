import { resolve } from 'node:path';
import { SchemaViolation, integer, object, oneOf, string } from '@switchboard/common/config';

/**
 * RelayAuditDurability is when the relay considers a record stored (docs/audit.md):
 * `strict` — a recorded request is forwarded only once its record is fsynced; `batched` — records
 * are flushed within a few milliseconds, calls are not held; `off` — records are written but never
 * synced while running (benchmarks and development only; the relay warns).
 */
export type RelayAuditDurability = 'strict' | 'batched' | 'off';

/**
 * RelayAuditConfig is the `audit` section of relay.yaml (docs/audit.md, "Relay configuration"),
 * with `path` and `signingKey` absolute.
 */
export interface RelayAuditConfig {
  /** path is the live trail file. */
  path: string;
  /** durability: `strict` (default), `batched`, or `off` (explicit only; the relay warns). */
  durability: RelayAuditDurability;
  /**
   * signingKey is the Ed25519 checkpoint key (`audit_key.pem`, written by `switchboard ca init`):
   * required, so that a cut-off tail can be detected; the literal `none` runs unsigned, knowingly.
   */
  signingKey: string;
  /** checkpointEvery: a signed checkpoint after this many records or seconds, whichever first (1000, 60). */
  checkpointEvery?: { records?: number; seconds?: number };
  /** rotate starts a new file at `maxBytes` or when the first record is `maxAgeSeconds` old. */
  rotate?: { maxBytes?: number; maxAgeSeconds?: number };
}

const DAY = 86_400;

/** UNSIGNED is the `audit.signingKey` value that runs the trail without signed checkpoints. */
export const UNSIGNED = 'none';

/** auditSchema is relay.yaml's `audit` section (docs/audit.md); unknown keys are errors. */
export const auditSchema = object({
  path: string(),
  durability: oneOf(['strict', 'batched', 'off'], (d) => `must be strict, batched or off, not ${JSON.stringify(d)}`).optional(),
  signingKey: string({ what: 'the checkpoint key file (audit_key.pem), or none' }).optional(),
  checkpointEvery: object({ records: integer(1, 10_000_000).optional(), seconds: integer(1, DAY).optional() }).optional(),
  rotate: object({ maxBytes: integer(4096, Number.MAX_SAFE_INTEGER).optional(), maxAgeSeconds: integer(1, 366 * DAY).optional() }).optional(),
});

/** auditConfig completes a validated `audit` section: defaults set, paths resolved against `baseDir`. */
export function auditConfig(section: ReturnType<typeof auditSchema.parse>, baseDir: string): RelayAuditConfig {
  if (section.signingKey === undefined) {
    throw new SchemaViolation(['audit', 'signingKey'], `is required: the checkpoint key (audit_key.pem from \`switchboard ca init\`), or ${UNSIGNED} to run without signed checkpoints (a cut-off tail then goes unnoticed)`);
  }
  const signingKey = section.signingKey === UNSIGNED ? UNSIGNED : resolve(baseDir, section.signingKey);
  const out: RelayAuditConfig = { path: resolve(baseDir, section.path), durability: section.durability ?? 'strict', signingKey };
  if (section.checkpointEvery !== undefined) out.checkpointEvery = definedOnly(section.checkpointEvery);
  if (section.rotate !== undefined) out.rotate = definedOnly(section.rotate);
  return out;
}

function definedOnly<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}
