import { createHash } from 'node:crypto';
import type { ToolSummary } from '@switchboard/guard';
import type { AuditVerifyResult } from '@switchboard/audit';
import type { AuditMetricsSnapshot } from '../audit/metrics.js';
import type { Inventory } from '../enforce/inventory.js';
import type { PinRuntime } from '../enforce/pin-runtime.js';
import type { PolicyStore } from '../policy/store.js';
import type { LiveSession, Observatory, ObservatoryCounts } from './observatory.js';

/**
 * The relay inventory behind the console, `GET /v1/inventory` on the admin listener and
 * `switchboard status`: servers and their connectors, each server's tools with their pin state,
 * live sessions, audit trail health and the policy in force. Names, hashes and short summaries
 * only: never an argument, a result or a secret.
 */

/** ToolState is a tool's pin state as the console shows it. */
export type ToolState = 'pinned' | 'drifted' | 'pending' | 'unapproved' | 'unpinned';

/** ToolChange is one field of a drifted definition that differs from the pin. */
export interface ToolChange {
  readonly field: 'title' | 'description' | 'inputs';
  readonly pinned: string;
  readonly seen: string;
}

/** InventoryToolView is one tool of one server. */
export interface InventoryToolView {
  name: string;
  title?: string;
  description?: string;
  state: ToolState;
  /** hash is the definition in use (the pin's), null when unpinned or never pinned. */
  hash: string | null;
  /** seenHash is the definition waiting for approval (drifted, pending or unapproved). */
  seenHash?: string;
  seenAt?: string;
  /** changes says what a drifted definition changed (summaries: the first 200 characters of a description). */
  changes?: ToolChange[];
  /**
   * allowedBy and deniedBy name the rules of this server that allow or deny the tool by name
   * (deny beats allow for an agent both match; an agent no allowing rule matches is refused).
   */
  allowedBy: string[];
  deniedBy: string[];
}

/** InventoryServerView is one server of the policy. */
export interface InventoryServerView {
  name: string;
  online: boolean;
  zone: string | null;
  labels: Record<string, string>;
  /** pinning is the pin mode (`tofu`, `strict`) or `off`. */
  pinning: string;
  connectors: { id: string; linkId: string; sessions: number }[];
  tools: InventoryToolView[];
  /** toolsSeenAt is when the relay last saw the server's tools/list, or null. */
  toolsSeenAt: string | null;
  sessions: number;
}

/** AuditView is the audit trail's health. */
export interface AuditView extends AuditMetricsSnapshot {
  /** path is the live trail file, null for a sink that is not a trail. */
  path: string | null;
  signed: boolean;
  /** lastVerify is the last verification this relay ran of its own trail, or null. */
  lastVerify: (Pick<AuditVerifyResult, 'ok' | 'records' | 'firstSeq' | 'lastSeq' | 'checkpoints' | 'unsignedTail' | 'signaturesChecked' | 'message' | 'problem' | 'firstBadSeq'> & { at: string }) | null;
}

/** RelayInventory is the whole answer of `GET /v1/inventory`. */
export interface RelayInventory {
  relay: { id: string; url: string; startedAt: string; now: string };
  policy: { source: string | null; digest: string; loadedAt: string; generation: number; servers: number; rules: number; revoked: number; warnings: string[] };
  servers: InventoryServerView[];
  sessions: LiveSession[];
  audit: AuditView;
  counts: ObservatoryCounts & { sessionsOpen: number; linksUp: number; approvalsEnabled: boolean };
}

/** InventorySources are what the inventory is read from. */
export interface InventorySources {
  relayId: string;
  url: string;
  startedAt: string;
  policy: PolicyStore;
  policyLoadedAt(): string;
  links(server: string): { peer: { id: { toString(): string } }; linkId: string; sessionCount: number }[];
  pins: PinRuntime;
  inventory: Inventory;
  observatory: Observatory;
  audit(): AuditView;
  approvalsEnabled: boolean;
}

/** policyDigest is the SHA-256 of the policy file's text, or of the compiled document when it came from no file. */
export function policyDigest(store: PolicyStore): string {
  const p = store.current;
  return p.sourceHash ?? createHash('sha256').update(JSON.stringify(p.document)).digest('hex');
}

function changes(pinned: ToolSummary | undefined, seen: ToolSummary): ToolChange[] {
  if (pinned === undefined) return [];
  const out: ToolChange[] = [];
  if ((pinned.title ?? '') !== (seen.title ?? '')) out.push({ field: 'title', pinned: pinned.title ?? '', seen: seen.title ?? '' });
  if (pinned.description !== seen.description) out.push({ field: 'description', pinned: pinned.description, seen: seen.description });
  if (pinned.inputs.join(',') !== seen.inputs.join(',')) out.push({ field: 'inputs', pinned: pinned.inputs.join(', '), seen: seen.inputs.join(', ') });
  return out;
}

/** toolsOf merges what the relay last saw of `server` with its pin store entries. */
function toolsOf(src: InventorySources, server: string, mode: string): InventoryToolView[] {
  const rules = src.policy.current.rules.filter((r) => r.servers.match(server) !== undefined);
  const seen = src.inventory.get(server);
  const pins = src.pins.store.list(server)[0];
  const names = new Set<string>([...(seen?.tools.map((t) => t.name) ?? []), ...Object.keys(pins?.tools ?? {}), ...Object.keys(pins?.pending ?? {})]);
  const byName = new Map(seen?.tools.map((t) => [t.name, t]) ?? []);
  const out: InventoryToolView[] = [];
  for (const name of [...names].sort()) {
    const t = byName.get(name);
    const pin = pins?.tools[name];
    const pending = pins?.pending[name];
    const view: InventoryToolView = {
      name,
      state: 'unpinned',
      hash: pin?.hash ?? null,
      allowedBy: rules.filter((r) => r.toolsAllow.match(name) !== undefined).map((r) => r.id),
      deniedBy: rules.filter((r) => r.toolsDeny.match(name) !== undefined).map((r) => r.id),
    };
    const title = t?.title ?? pin?.summary.title ?? pending?.summary.title;
    const description = t?.description ?? pin?.summary.description ?? pending?.summary.description;
    if (title !== undefined) view.title = title;
    if (description !== undefined && description !== '') view.description = description;
    if (pending !== undefined) {
      view.state = pending.pinnedHash === null ? 'pending' : pending.pinnedHash === pending.seenHash ? 'unapproved' : 'drifted';
      view.seenHash = pending.seenHash;
      view.seenAt = pending.seenAt;
      if (view.state === 'drifted') view.changes = changes(pin?.summary, pending.summary);
    } else if (pin !== undefined) {
      view.state = 'pinned';
    } else if (mode !== 'off') {
      // Seen but neither pinned nor pending cannot happen with pinning on; say so rather than guess.
      view.state = 'unpinned';
    }
    out.push(view);
  }
  return out;
}

/** inventoryOf builds the inventory as of now. */
export function inventoryOf(src: InventorySources): RelayInventory {
  const snapshot = src.policy.current;
  const sessions = src.observatory.sessions();
  const servers: InventoryServerView[] = [];
  let linksUp = 0;
  const linkIds = new Set<string>();
  for (const server of snapshot.servers.values()) {
    const links = src.links(server.name);
    for (const l of links) linkIds.add(l.linkId);
    const mode = src.pins.modeFor(server) ?? 'off';
    servers.push({
      name: server.name,
      online: links.length > 0,
      zone: server.zone ?? null,
      labels: { ...server.labels },
      pinning: mode,
      connectors: links.map((l) => ({ id: l.peer.id.toString(), linkId: l.linkId, sessions: l.sessionCount })),
      tools: toolsOf(src, server.name, mode),
      toolsSeenAt: src.inventory.get(server.name)?.seenAt ?? null,
      sessions: sessions.filter((s) => s.server === server.name).length,
    });
  }
  linksUp = linkIds.size;
  return {
    relay: { id: src.relayId, url: src.url, startedAt: src.startedAt, now: new Date().toISOString() },
    policy: {
      source: snapshot.source ?? null,
      digest: policyDigest(src.policy),
      loadedAt: src.policyLoadedAt(),
      generation: snapshot.generation,
      servers: snapshot.servers.size,
      rules: snapshot.rules.length,
      revoked: snapshot.revoked.ids.length + snapshot.revoked.serials.size,
      warnings: [...snapshot.warnings],
    },
    servers,
    sessions,
    audit: src.audit(),
    counts: { ...src.observatory.counts, sessionsOpen: sessions.length, linksUp, approvalsEnabled: src.approvalsEnabled },
  };
}
