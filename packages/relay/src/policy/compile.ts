import { PkiError, SpiffeId, TrustDomain, parseIdMatcher, type IdMatcher } from '@switchboard/pki';
import { PolicyError } from '../errors.js';
import { GlobSet } from '../internal/glob.js';
import {
  SchemaViolation,
  checkBoolean,
  checkObject,
  checkString,
  checkStringList,
  formatPath,
  type PathSegment,
} from '../internal/schema.js';
import { SERVER_REQUEST_KINDS, type PolicyDocument, type PolicyRuleDocument, type ServerRequestKind } from './document.js';

/** SERVER_NAME_PATTERN is what a server name may look like: it appears in URL paths and logs. */
export const SERVER_NAME_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$/;
const RULE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_PATTERNS = 10_000;

/** CompiledServer is a server as the policy declares it. */
export interface CompiledServer {
  readonly name: string;
  /** connectors holds the exact SPIFFE IDs allowed to serve it. */
  readonly connectors: ReadonlySet<string>;
}

/** CompiledRule is a rule ready for evaluation: matchers built, globs compiled. */
export interface CompiledRule {
  readonly id: string;
  /** index is the rule's position in the file (first rule is 0). */
  readonly index: number;
  readonly agents: readonly IdMatcher[];
  readonly servers: GlobSet;
  readonly toolsAllow: GlobSet;
  readonly toolsDeny: GlobSet;
  readonly serverRequests: Readonly<Partial<Record<ServerRequestKind, boolean>>>;
  /** grants is true when the rule allows anything; deny-only rules never admit a session. */
  readonly grants: boolean;
}

let nextGeneration = 1;

/**
 * PolicySnapshot is a compiled, immutable policy. Decisions are pure functions of a snapshot;
 * a reload builds a new snapshot and swaps it in (see {@link PolicyStore}).
 */
export class PolicySnapshot {
  readonly trustDomain: TrustDomain;
  readonly servers: ReadonlyMap<string, CompiledServer>;
  readonly rules: readonly CompiledRule[];
  /** connectorIds holds every ID listed under some `servers.<name>.connectors`. */
  readonly connectorIds: ReadonlySet<string>;
  /** generation increases with every snapshot compiled in this process. */
  readonly generation: number;
  /** source is the file the snapshot was read from, when it came from one. */
  readonly source: string | undefined;
  /** document is a frozen copy of what was compiled. */
  readonly document: Readonly<PolicyDocument>;

  /** @internal use {@link compilePolicy}. */
  constructor(init: {
    trustDomain: TrustDomain;
    servers: Map<string, CompiledServer>;
    rules: CompiledRule[];
    document: PolicyDocument;
    source: string | undefined;
  }) {
    this.trustDomain = init.trustDomain;
    this.servers = init.servers;
    this.rules = Object.freeze(init.rules);
    const ids = new Set<string>();
    for (const s of init.servers.values()) for (const c of s.connectors) ids.add(c);
    this.connectorIds = ids;
    this.generation = nextGeneration++;
    this.source = init.source;
    this.document = deepFreeze(structuredClone(init.document));
    Object.freeze(this);
  }
}

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
  /** locate maps a key path to its line in the source, for error messages. */
  locate?: (path: readonly PathSegment[]) => { line: number; col: number } | undefined;
}

/**
 * compilePolicy validates a policy document (unknown keys, types, SPIFFE IDs, unique rule ids,
 * servers a rule names must exist) and compiles it into an immutable {@link PolicySnapshot}.
 * Throws {@link PolicyError} naming the key path (and line, when `locate` is given).
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
    return compile(doc, options.source);
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

function idRule(err: unknown): string {
  return err instanceof PkiError ? err.message.replace(/^spiffeid: /, '') : String(err);
}

function compile(doc: unknown, source: string | undefined): PolicySnapshot {
  const root = checkObject(doc, [], ['trustDomain', 'servers', 'rules'], ['trustDomain', 'servers']);
  const tdText = checkString(root.trustDomain, ['trustDomain']);
  let td: TrustDomain;
  try {
    td = TrustDomain.parse(tdText);
  } catch (err) {
    throw new SchemaViolation(['trustDomain'], `not a valid trust domain (${idRule(err)})`);
  }
  if (tdText.startsWith('spiffe://')) throw new SchemaViolation(['trustDomain'], 'write the trust domain name (example.org), not a SPIFFE ID');

  const serversDoc = checkObject(root.servers, ['servers'], Object.keys(root.servers ?? {}));
  const servers = new Map<string, CompiledServer>();
  for (const [name, value] of Object.entries(serversDoc)) {
    const path: PathSegment[] = ['servers', name];
    if (!SERVER_NAME_PATTERN.test(name)) throw new SchemaViolation(path, 'server names are 1–128 characters of A–Z a–z 0–9 . _ - (not "." or "..")');
    const s = checkObject(value, path, ['connectors'], ['connectors']);
    const ids = checkStringList(s.connectors, [...path, 'connectors'], 1);
    const connectors = new Set<string>();
    ids.forEach((text, i) => {
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
    servers.set(name, Object.freeze({ name, connectors }));
  }

  const rulesDoc = root.rules === undefined ? [] : root.rules;
  if (!Array.isArray(rulesDoc)) throw new SchemaViolation(['rules'], 'must be a list of rules');
  const seen = new Set<string>();
  const rules = rulesDoc.map((r, i) => compileRule(r, i, td, servers, seen));
  return new PolicySnapshot({ trustDomain: td, servers, rules, document: root as unknown as PolicyDocument, source });
}

function compileRule(
  value: unknown,
  index: number,
  td: TrustDomain,
  servers: Map<string, CompiledServer>,
  seen: Set<string>,
): CompiledRule {
  const path: PathSegment[] = ['rules', index];
  const r = checkObject(value, path, ['id', 'agents', 'servers', 'tools', 'serverRequests'], ['id', 'agents', 'servers']) as Partial<
    Record<keyof PolicyRuleDocument, unknown>
  >;
  const id = checkString(r.id, [...path, 'id']);
  if (!RULE_ID_PATTERN.test(id)) throw new SchemaViolation([...path, 'id'], 'rule ids are 1–128 characters of A–Z a–z 0–9 . _ : -');
  if (seen.has(id)) throw new SchemaViolation([...path, 'id'], `rule id "${id}" is used twice`);
  seen.add(id);

  const agentPatterns = checkStringList(r.agents, [...path, 'agents'], 1);
  const agents = agentPatterns.map((p, i) => {
    const at = [...path, 'agents', i];
    let m: IdMatcher;
    try {
      m = parseIdMatcher(p);
    } catch (err) {
      throw new SchemaViolation(at, `not a valid SPIFFE ID or pattern (${idRule(err)})`);
    }
    const tdOf = /^spiffe:\/\/([^/]+)/.exec(p)?.[1];
    if (tdOf !== td.name) throw new SchemaViolation(at, `${p} is outside trust domain ${td.name}`);
    return m;
  });

  const serverNames = checkStringList(r.servers, [...path, 'servers'], 1);
  serverNames.forEach((name, i) => {
    if (name.includes('*')) return;
    if (!servers.has(name)) throw new SchemaViolation([...path, 'servers', i], `server "${name}" is not declared under servers`);
  });

  let allow: string[] = [];
  let deny: string[] = [];
  if (r.tools !== undefined) {
    const t = checkObject(r.tools, [...path, 'tools'], ['allow', 'deny']);
    if (t.allow !== undefined) allow = checkStringList(t.allow, [...path, 'tools', 'allow']);
    if (t.deny !== undefined) deny = checkStringList(t.deny, [...path, 'tools', 'deny']);
    if (allow.length + deny.length > MAX_PATTERNS) throw new SchemaViolation([...path, 'tools'], `at most ${MAX_PATTERNS} patterns`);
  }

  const serverRequests: Partial<Record<ServerRequestKind, boolean>> = {};
  if (r.serverRequests !== undefined) {
    const sr = checkObject(r.serverRequests, [...path, 'serverRequests'], SERVER_REQUEST_KINDS);
    for (const kind of SERVER_REQUEST_KINDS) {
      if (sr[kind] !== undefined) serverRequests[kind] = checkBoolean(sr[kind], [...path, 'serverRequests', kind]);
    }
  }
  const grants = allow.length > 0 || Object.values(serverRequests).some((v) => v === true);

  return Object.freeze({
    id,
    index,
    agents: Object.freeze(agents),
    servers: new GlobSet(serverNames),
    toolsAllow: new GlobSet(allow),
    toolsDeny: new GlobSet(deny),
    serverRequests: Object.freeze(serverRequests),
    grants,
  });
}
