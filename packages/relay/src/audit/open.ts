import { readFile } from 'node:fs/promises';
import { AuditSigningKey, isAuditError, loadAuditSigningKey, sha256Hex, type AuditBatchTiming, type AuditFs, type AuditPolicyReload } from '@switchboard/audit';
import type { Logger } from '@switchboard/common';
import { RelayConfigError } from '../errors.js';
import { UNSIGNED, type RelayAuditConfig, type RelayAuditDurability } from '../config/audit-config.js';
import type { AuditSink } from './sink.js';
import { TrailAuditSink } from './trail-sink.js';

/**
 * RelayAuditOptions are `audit` options given to `startRelay` in code: the relay.yaml section
 * ({@link RelayAuditConfig}), where `durability` may be left out (strict) and `signingKey` may be a
 * loaded key instead of a path.
 */
export interface RelayAuditOptions extends Omit<RelayAuditConfig, 'durability' | 'signingKey'> {
  durability?: RelayAuditDurability;
  /** signingKey: a key file, a loaded key, or `'none'` (unsigned, knowingly). Required. */
  signingKey: string | AuditSigningKey;
}

/** OpenedAudit is the sink the relay writes to, and whether the relay closes it at shutdown. */
export interface OpenedAudit {
  sink: AuditSink;
  owned: boolean;
}

const DURABILITIES = new Set<string>(['strict', 'batched', 'off']);

/**
 * openRelayAudit opens the relay's audit sink: a given `{ sink }` as is, otherwise a
 * {@link TrailAuditSink}. It loads the checkpoint key, warns about settings that weaken the trail
 * (no signing key; `durability: off`) and about a torn write repaired at open. Throws
 * `RELAY_ERR_CONFIG` for an invalid option or unreadable key, `RELAY_ERR_AUDIT` when the trail
 * cannot be opened (a corrupt tail included).
 */
export async function openRelayAudit(
  audit: RelayAuditOptions | { sink: AuditSink },
  env: { logger: Logger; fs?: AuditFs; onFailure: (err: Error) => void; onRecovered?: () => void; onBatch?: (batch: AuditBatchTiming) => void },
): Promise<OpenedAudit> {
  if ('sink' in audit) return { sink: audit.sink, owned: false };
  const log = env.logger;
  const durability = audit.durability ?? 'strict';
  if (!DURABILITIES.has(durability)) {
    throw new RelayConfigError(`config: audit.durability: must be strict, batched or off, not ${JSON.stringify(durability)}`, { path: 'audit.durability' });
  }
  let signingKey: AuditSigningKey | undefined;
  if ((audit.signingKey as unknown) === undefined) {
    throw new RelayConfigError(
      `config: audit.signingKey: is required: the checkpoint key (audit_key.pem from \`switchboard ca init\`), or ${UNSIGNED} to run without signed checkpoints`,
      { path: 'audit.signingKey' },
    );
  }
  if (audit.signingKey === UNSIGNED) {
    signingKey = undefined;
  } else if (typeof audit.signingKey === 'string') {
    try {
      signingKey = await loadAuditSigningKey(audit.signingKey);
    } catch (err) {
      const detail = isAuditError(err) ? `${err.code}: ${err.message}` : String(err);
      throw new RelayConfigError(`config: audit.signingKey: cannot load the checkpoint key ${audit.signingKey}: ${detail}`, { path: 'audit.signingKey', cause: err });
    }
  } else {
    signingKey = audit.signingKey;
  }
  if (signingKey === undefined) {
    log.warn(
      { path: audit.path },
      'audit.signingKey is none: checkpoints are not signed, so `switchboard audit verify` cannot detect a truncated tail or a re-chained edit (it exits 3 unless given --allow-unsigned); set it to the audit_key.pem written by `switchboard ca init`',
    );
  }
  if (durability === 'off') {
    log.warn(
      { path: audit.path },
      'audit.durability is off: records are written but never fsynced while running, and calls are forwarded without waiting for them; a crash can lose the end of the trail. Use strict (or batched) in production',
    );
  }
  const sink = await TrailAuditSink.open({
    path: audit.path,
    durability,
    ...(signingKey ? { signingKey } : {}),
    ...(audit.checkpointEvery ? { checkpointEvery: audit.checkpointEvery } : {}),
    ...(audit.rotate ? { rotate: audit.rotate } : {}),
    ...(env.fs ? { fs: env.fs } : {}),
    onFailure: env.onFailure,
    ...(env.onRecovered ? { onRecovered: env.onRecovered } : {}),
    ...(env.onBatch ? { onBatch: env.onBatch } : {}),
    onRefused: (err, type) => log.error({ err: err.message, type }, 'audit record refused by the trail (a relay bug): it is not recorded'),
  });
  const rec = sink.recovery;
  if (rec !== undefined) {
    log.warn({ recovery: rec }, 'audit trail: a torn final line (a crash mid-write, never acknowledged) was cut off and saved aside');
  }
  log.info({ path: audit.path, durability, signed: signingKey !== undefined, keyId: signingKey?.keyId, lastSeq: sink.health().lastSeq }, 'audit trail open');
  return { sink, owned: true };
}

/**
 * policyReloadRecord builds the `policy.reload` record of a load or reload of `file`: `fileHash`
 * is SHA-256 of the file's bytes as read right after it (null when unreadable or not from a file).
 */
export async function policyReloadRecord(file: string | undefined, error: string | null): Promise<AuditPolicyReload> {
  let fileHash: string | null = null;
  if (file !== undefined) {
    try {
      fileHash = sha256Hex(await readFile(file));
    } catch {
      fileHash = null;
    }
  }
  return { type: 'policy.reload', accepted: error === null, file: file ?? null, fileHash, error: error === null ? null : error.slice(0, 1024) };
}
