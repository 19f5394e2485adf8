import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AuditMetricsSnapshot } from '../audit/metrics.js';
import type { AuditSink } from '../audit/sink.js';
import { TrailAuditSink } from '../audit/trail-sink.js';
import type { Enforcement } from '../enforce/enforcement.js';
import { RelayError } from '../errors.js';
import type { ConnectorLink } from '../link/connector-link.js';
import type { Registry } from '../link/registry.js';
import type { PolicyStore } from '../policy/store.js';
import type { AdminApiContext } from './admin-api.js';
import type { AuditView } from './inventory-view.js';
import type { Observatory } from './observatory.js';

/** MIN_TOKEN_LENGTH is the shortest admin token accepted (32 characters: `openssl rand -hex 32` gives 64). */
export const MIN_TOKEN_LENGTH = 32;

/**
 * readAdminToken reads `admin.tokenFile` and returns the SHA-256 of the token (surrounding
 * whitespace trimmed); the token itself is not kept. Throws `RELAY_ERR_CONFIG` when the file is
 * unreadable or the token shorter than {@link MIN_TOKEN_LENGTH} or not printable ASCII.
 */
export async function readAdminToken(path: string): Promise<Buffer> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new RelayError('RELAY_ERR_CONFIG', `config: admin.tokenFile: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  const token = text.trim();
  if (token.length < MIN_TOKEN_LENGTH || token.length > 512 || !/^[\x21-\x7e]+$/.test(token)) {
    throw new RelayError(
      'RELAY_ERR_CONFIG',
      `config: admin.tokenFile: ${path} must hold one token of ${MIN_TOKEN_LENGTH} to 512 printable characters without spaces (make one: openssl rand -hex 32 > ${path})`,
    );
  }
  return createHash('sha256').update(token).digest();
}

/** ConsoleParts are the relay's parts the console reads. */
export interface ConsoleParts {
  relayId: string;
  url: string;
  policy: PolicyStore;
  registry: Registry<ConnectorLink>;
  enforcement: Enforcement;
  observatory: Observatory;
  /** trail is the sink as opened (before the observatory's tap), for its path and verification. */
  trail: AuditSink;
  auditMetrics: () => AuditMetricsSnapshot | null;
  tokenDigest: Buffer | undefined;
}

/** consoleContext builds the admin API's context over the running relay's parts. */
export function consoleContext(parts: ConsoleParts): AdminApiContext {
  const startedAt = new Date().toISOString();
  let policyLoadedAt = startedAt;
  parts.policy.onSwap(() => {
    policyLoadedAt = new Date().toISOString();
  });
  let lastVerify: AuditView['lastVerify'] = null;
  let verifying: Promise<AuditView['lastVerify']> | undefined;
  const trail = parts.trail instanceof TrailAuditSink ? parts.trail : undefined;
  return {
    relayId: parts.relayId,
    url: parts.url,
    startedAt,
    policy: parts.policy,
    policyLoadedAt: () => policyLoadedAt,
    links: (server) => parts.registry.linksFor(server),
    pins: parts.enforcement.pins,
    inventory: parts.enforcement.inventory,
    observatory: parts.observatory,
    approvalsEnabled: parts.tokenDigest !== undefined,
    tokenDigest: parts.tokenDigest,
    audit: () => {
      const m = parts.auditMetrics() ?? { available: parts.trail.available, durability: parts.trail.durability, records: 0, checkpoints: 0, syncs: 0, rotations: 0, lastSeq: 0, durableSeq: 0, pendingBytes: 0, queued: 0, lastCheckpoint: null };
      return { ...m, path: trail?.path ?? null, signed: trail?.publicKey !== undefined, lastVerify };
    },
    approve: (server, tools, by) => parts.enforcement.pins.approve(server, tools, by).map((e) => ({ tool: e.tool, hash: e.hash, previousHash: e.previousHash ?? null })),
    verify: () => {
      if (trail === undefined) return Promise.resolve(null);
      // One verification at a time: a second request waits for the one running.
      verifying ??= trail
        .verify()
        .then((r) => {
          lastVerify = {
            at: new Date().toISOString(),
            ok: r.ok,
            records: r.records,
            checkpoints: r.checkpoints,
            unsignedTail: r.unsignedTail,
            signaturesChecked: r.signaturesChecked,
            message: r.message,
            ...(r.firstSeq !== undefined ? { firstSeq: r.firstSeq } : {}),
            ...(r.lastSeq !== undefined ? { lastSeq: r.lastSeq } : {}),
            ...(r.problem !== undefined ? { problem: r.problem } : {}),
            ...(r.firstBadSeq !== undefined ? { firstBadSeq: r.firstBadSeq } : {}),
          };
          return lastVerify;
        })
        .finally(() => {
          verifying = undefined;
        });
      return verifying;
    },
  };
}
