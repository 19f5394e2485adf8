import { resolve } from 'node:path';
import { SchemaViolation, checkInteger, checkObject, checkString, type PathSegment } from '../internal/schema.js';

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
  /** signingKey is the Ed25519 checkpoint key (`audit_key.pem`); without it checkpoints are not written. */
  signingKey?: string;
  /** checkpointEvery: a signed checkpoint after this many records or seconds, whichever first (1000, 60). */
  checkpointEvery?: { records?: number; seconds?: number };
  /** rotate starts a new file at `maxBytes` or when the first record is `maxAgeSeconds` old. */
  rotate?: { maxBytes?: number; maxAgeSeconds?: number };
}

const DURABILITIES: readonly RelayAuditDurability[] = ['strict', 'batched', 'off'];
const DAY = 86_400;

/**
 * parseAuditSection validates relay.yaml's `audit` section (unknown keys are errors) and resolves
 * its paths against `baseDir`. Throws {@link SchemaViolation} naming the key path.
 */
export function parseAuditSection(raw: unknown, baseDir: string, path: readonly PathSegment[] = ['audit']): RelayAuditConfig {
  const o = checkObject(raw, path, ['path', 'durability', 'signingKey', 'checkpointEvery', 'rotate'], ['path']);
  const out: RelayAuditConfig = { path: resolve(baseDir, checkString(o.path, [...path, 'path'])), durability: 'strict' };
  if (o.durability !== undefined) {
    const d = checkString(o.durability, [...path, 'durability']);
    if (!(DURABILITIES as readonly string[]).includes(d)) {
      throw new SchemaViolation([...path, 'durability'], `must be strict, batched or off, not ${JSON.stringify(d)}`);
    }
    out.durability = d as RelayAuditDurability;
  }
  if (o.signingKey !== undefined) out.signingKey = resolve(baseDir, checkString(o.signingKey, [...path, 'signingKey']));
  if (o.checkpointEvery !== undefined) {
    const p = [...path, 'checkpointEvery'];
    const c = checkObject(o.checkpointEvery, p, ['records', 'seconds']);
    out.checkpointEvery = {};
    if (c.records !== undefined) out.checkpointEvery.records = checkInteger(c.records, [...p, 'records'], 1, 10_000_000);
    if (c.seconds !== undefined) out.checkpointEvery.seconds = checkInteger(c.seconds, [...p, 'seconds'], 1, DAY);
  }
  if (o.rotate !== undefined) {
    const p = [...path, 'rotate'];
    const r = checkObject(o.rotate, p, ['maxBytes', 'maxAgeSeconds']);
    out.rotate = {};
    if (r.maxBytes !== undefined) out.rotate.maxBytes = checkInteger(r.maxBytes, [...p, 'maxBytes'], 4096, Number.MAX_SAFE_INTEGER);
    if (r.maxAgeSeconds !== undefined) out.rotate.maxAgeSeconds = checkInteger(r.maxAgeSeconds, [...p, 'maxAgeSeconds'], 1, 366 * DAY);
  }
  return out;
}
