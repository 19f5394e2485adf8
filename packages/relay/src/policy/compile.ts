import { createHash } from 'node:crypto';
import { SpiffeId, TrustDomain, type IdMatcher } from '@switchboard/pki';
import { SERVER_NAME_RULE, isServerName } from '@switchboard/protocol';
import { PolicyError } from '../errors.js';
import { SchemaViolation, formatPath, validate, type PathSegment } from '@switchboard/common/config';
import { compileAgentPatterns, compileRule, idRule, type CompiledRule } from './compile-rule.js';
import type { PinningMode, PolicyDocument } from './document.js';
import { RuleIndex } from './rule-index.js';
import { policySchema, type PolicyShape, type ServerShape } from './schema.js';

export type { CompiledRule, ArgRule, CallKind } from './compile-rule.js';

const ZONE_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const LABEL_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
const MAX_LABEL_VALUE = 256;
const MAX_LABELS = 64;

/** CompiledServer is a server as the policy declares it. */
export interface CompiledServer {
  readonly name: string;
  /** connectors holds the exact SPIFFE IDs allowed to serve it. */
  readonly connectors: ReadonlySet<string>;
  /** zone is the trust zone the server sits in, if any. */
  readonly zone: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  /** pinning is the server's pinning mode; `undefined` means the relay's default. */
  readonly pinning: PinningMode | undefined;
  /** identityToBackend: mint a JWT-SVID for the calling agent and send it in OPEN. */
  readonly identityToBackend: boolean;
}

/** CompiledZone is a trust zone: the agent patterns allowed to reach its servers. */
export interface CompiledZone {
  readonly name: string;
  readonly agents: readonly IdMatcher[];
}

/** RevocationList holds the identities refused everywhere. */
export interface RevocationList {
  /** ids holds the `revoked.ids` matchers, in file order. */
  readonly ids: readonly IdMatcher[];
  /** serials holds normalised serial numbers (uppercase hex, no colons, no leading zeros). */
  readonly serials: ReadonlySet<string>;
}

let nextGeneration = 1;

/**
 * PolicySnapshot is a compiled, immutable policy. Decisions are pure functions of a snapshot;
 * a reload builds a new snapshot and swaps it in (see {@link PolicyStore}).
 */
export class PolicySnapshot {
  readonly trustDomain: TrustDomain;
  readonly servers: ReadonlyMap<string, CompiledServer>;
  readonly zones: ReadonlyMap<string, CompiledZone>;
  readonly rules: readonly CompiledRule[];
  readonly revoked: RevocationList;
  /** index finds the rules for one agent and server without scanning the others. */
  readonly index: RuleIndex;
  /** connectorIds holds every ID listed under some `servers.<name>.connectors`. */
  readonly connectorIds: ReadonlySet<string>;
  /** warnings lists things that are valid but probably not meant (a rule its zone makes useless). */
  readonly warnings: readonly string[];
  /** generation increases with every snapshot compiled in this process. */
  readonly generation: number;
  /** source is the file the snapshot was read from, when it came from one. */
  readonly source: string | undefined;
  /** sourceHash is the SHA-256 (hex) of the file's text, when it came from one. */
  readonly sourceHash: string | undefined;
  private readonly compiled: PolicyDocument;

  /** @internal use {@link compilePolicy}. */
  constructor(init: {
    trustDomain: TrustDomain;
    servers: Map<string, CompiledServer>;
    zones: Map<string, CompiledZone>;
    rules: CompiledRule[];
    revoked: RevocationList;
    warnings: string[];
    document: PolicyDocument;
    source: string | undefined;
    sourceHash: string | undefined;
  }) {
    this.trustDomain = init.trustDomain;
    this.servers = init.servers;
    this.zones = init.zones;
    this.rules = Object.freeze(init.rules);
    this.revoked = init.revoked;
    this.index = new RuleIndex(this.rules, init.servers.keys());
    const ids = new Set<string>();
    for (const s of init.servers.values()) for (const c of s.connectors) ids.add(c);
    this.connectorIds = ids;
    this.warnings = Object.freeze(init.warnings);
    this.generation = nextGeneration++;
    this.source = init.source;
    this.sourceHash = init.sourceHash;
    this.compiled = init.document;
    Object.freeze(this);
  }

  /**
   * document is a frozen copy of what was compiled, made at first use (copying a large policy on
   * every load would slow reloads down for a field that is rarely read).
   */
  get document(): Readonly<PolicyDocument> {
    let d = documents.get(this);
    if (d === undefined) {
      d = deepFreeze(structuredClone(this.compiled));
      documents.set(this, d);
    }
    return d;
  }
}

const documents = new WeakMap<PolicySnapshot, Readonly<PolicyDocument>>();

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}

/** CompileOptions tune {@link compilePolicy}. */
export interface CompileOptions {
  /** source names the file, for error messages and {@link PolicySnapshot.source}. */
  source?: string;
  /** text is the file's content; its SHA-256 becomes {@link PolicySnapshot.sourceHash}. */
  text?: string;
  /** locate maps a key path to its line in the source, for error messages. */
  locate?: (path: readonly PathSegment[]) => { line: number; col: number } | undefined;
}

/**
 * compilePolicy validates a policy document (unknown keys, types, SPIFFE IDs, unique rule ids,
 * servers and zones a key names must exist, argument constraints, rate specs, redaction profiles)
 * and compiles it into an immutable {@link PolicySnapshot}. Throws {@link PolicyError} naming the
 * key path (and line, when `locate` is given).
 *
 * @example
 * const snapshot = compilePolicy({
 *   trustDomain: 'example.org',
 *   servers: { crm: { connectors: ['spiffe://example.org/connector/crm'] } },
 *   rules: [{ id: 'support', agents: ['spiffe://example.org/agent/support/*'], servers: ['crm'],
 *             tools: { allow: ['lookup_*'], deny: ['*delete*'] } }],
 * });
 */
export function compilePolicy(doc: unknown, options: CompileOptions = {}): PolicySnapshot {
  try {
    const hash = options.text === undefined ? undefined : createHash('sha256').update(options.text).digest('hex');
    return compile(doc, options.source, hash);
  } catch (err) {
    if (err instanceof SchemaViolation) {
      const pos = options.locate?.(err.path);
      const where = options.source ? `${options.source}${pos ? `:${pos.line}:${pos.col}` : ''}: ` : pos ? `line ${pos.line}: ` : '';
      throw new PolicyError(`policy: ${where}${formatPath(err.path)}: ${err.rule}`, {
        path: formatPath(err.path),
        ...(pos ? { line: pos.line } : {}),
        cause: err,
      });
    }
    throw err;
  }
}

/** normalizeSerial writes a certificate serial as uppercase hex without colons or leading zeros. */
export function normalizeSerial(serial: string): string {
  const hex = serial.replaceAll(':', '').toUpperCase().replace(/^0+/, '');
  return hex === '' ? '0' : hex;
}

function compile(doc: unknown, source: string | undefined, sourceHash: string | undefined): PolicySnapshot {
  const root = validate(policySchema, doc);
  const tdText = root.trustDomain;
  if (tdText.startsWith('spiffe://')) throw new SchemaViolation(['trustDomain'], 'write the trust domain name (example.org), not a SPIFFE ID');
  let td: TrustDomain;
  try {
    td = TrustDomain.parse(tdText);
  } catch (err) {
    throw new SchemaViolation(['trustDomain'], `not a valid trust domain (${idRule(err)})`);
  }

  const zones = new Map<string, CompiledZone>();
  for (const [name, z] of Object.entries(root.zones ?? {})) {
    const path: PathSegment[] = ['zones', name];
    if (!ZONE_NAME_PATTERN.test(name)) throw new SchemaViolation(path, 'zone names are 1–64 characters of A–Z a–z 0–9 . _ -');
    zones.set(name, Object.freeze({ name, agents: Object.freeze(compileAgentPatterns(z.agents, [...path, 'agents'], td)) }));
  }

  const servers = new Map<string, CompiledServer>();
  for (const [name, value] of Object.entries(root.servers)) servers.set(name, compileServer(name, value, td, zones));

  const seen = new Set<string>();
  const names = new Set(servers.keys());
  const rules = (root.rules ?? []).map((r, i) => compileRule(r, i, td, names, seen));
  const revoked = compileRevoked(root.revoked, td);
  return new PolicySnapshot({
    trustDomain: td,
    servers,
    zones,
    rules,
    revoked,
    warnings: zoneWarnings(rules, servers, zones),
    // The document as written (the schema's output drops nothing: unknown keys are refused).
    document: doc as PolicyDocument,
    source,
    sourceHash,
  });
}

function compileServer(name: string, s: ServerShape, td: TrustDomain, zones: ReadonlyMap<string, CompiledZone>): CompiledServer {
  const path: PathSegment[] = ['servers', name];
  if (!isServerName(name)) throw new SchemaViolation(path, SERVER_NAME_RULE);
  const connectors = new Set<string>();
  s.connectors.forEach((text, i) => {
    const at = [...path, 'connectors', i];
    let id: SpiffeId;
    try {
      id = SpiffeId.parse(text);
    } catch (err) {
      throw new SchemaViolation(at, `not a valid SPIFFE ID (${idRule(err)})`);
    }
    if (!id.memberOf(td)) throw new SchemaViolation(at, `${text} is outside trust domain ${td.name}`);
    if (id.isRoot) throw new SchemaViolation(at, 'a connector ID must have a path');
    connectors.add(id.toString());
  });
  const zone = s.zone;
  if (zone !== undefined && !zones.has(zone)) throw new SchemaViolation([...path, 'zone'], `zone "${zone}" is not declared under zones`);
  const labels: Record<string, string> = {};
  if (s.labels !== undefined) {
    const entries = Object.entries(s.labels);
    if (entries.length > MAX_LABELS) throw new SchemaViolation([...path, 'labels'], `at most ${MAX_LABELS} labels`);
    for (const [k, v] of entries) {
      const at = [...path, 'labels', k];
      if (!LABEL_KEY_PATTERN.test(k)) throw new SchemaViolation(at, 'label names are 1–63 characters of A–Z a–z 0–9 . _ / - (starting with a letter or digit)');
      if (typeof v !== 'string') throw new SchemaViolation(at, 'label values are strings (quote numbers and booleans)');
      if (v.length > MAX_LABEL_VALUE) throw new SchemaViolation(at, `label values are at most ${MAX_LABEL_VALUE} characters`);
      labels[k] = v;
    }
  }
  const pinning: PinningMode | undefined = s.pinning?.mode;
  return Object.freeze({ name, connectors, zone, labels: Object.freeze(labels), pinning, identityToBackend: s.identityToBackend ?? false });
}

function compileRevoked(r: PolicyShape['revoked'], td: TrustDomain): RevocationList {
  if (r === undefined) return { ids: [], serials: new Set() };
  const ids = r.ids === undefined ? [] : compileAgentPatterns(r.ids, ['revoked', 'ids'], td);
  const serials = new Set<string>();
  (r.serials ?? []).forEach((s, i) => {
    if (!/^[0-9A-Fa-f]{1,2}(?::?[0-9A-Fa-f]{2})*$/.test(s) || s.replaceAll(':', '').length > 64) {
      throw new SchemaViolation(['revoked', 'serials', i], 'a certificate serial is hex (colons between bytes allowed), at most 32 bytes');
    }
    serials.add(normalizeSerial(s));
  });
  return Object.freeze({ ids: Object.freeze(ids), serials });
}

// A rule naming an exact agent and an exact server whose zone refuses that agent grants nothing
// there: valid (zones may be tightened on purpose), but worth telling `policy check` about.
function zoneWarnings(rules: readonly CompiledRule[], servers: ReadonlyMap<string, CompiledServer>, zones: ReadonlyMap<string, CompiledZone>): string[] {
  const out: string[] = [];
  for (const rule of rules) {
    for (const server of servers.values()) {
      if (server.zone === undefined || rule.servers.match(server.name) === undefined || !rule.grants) continue;
      const zone = zones.get(server.zone) as CompiledZone;
      for (const m of rule.agents) {
        if (m.kind !== 'exact') continue;
        const id = SpiffeId.parse(m.pattern);
        if (!zone.agents.some((z) => z.matches(id))) {
          out.push(`rules[${rule.index}] (${rule.id}): ${m.pattern} may not reach zone "${zone.name}" of server "${server.name}"; the rule grants it nothing there`);
        }
      }
    }
  }
  return out;
}
