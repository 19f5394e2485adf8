import { SpiffeId } from '@switchboard/pki';
import type { ArgCheck, RateRule } from '@switchboard/guard';
import { ruleCovers, type CallKind, type CompiledRule } from './compile-rule.js';
import { normalizeSerial, type PolicySnapshot } from './compile.js';
import type { Decision, ServerRequestKind } from './document.js';
import { normalizeResourceUri } from './uri-glob.js';

/**
 * Policy decisions: pure functions of a {@link PolicySnapshot}. Default deny; a deny in any
 * matching rule beats every allow; the deciding rule (or zone, or revocation entry) is named in
 * the decision.
 */

function asId(id: SpiffeId | string): SpiffeId {
  return typeof id === 'string' ? SpiffeId.parse(id) : id;
}

/** matchingRules lists the rules whose `agents` match `agent` and whose `servers` match `server`, in file order. */
export function matchingRules(snapshot: PolicySnapshot, agent: SpiffeId | string, server: string): CompiledRule[] {
  return snapshot.index.rulesFor(asId(agent), server);
}

/**
 * revocationDecision returns a deny when `agent` (or the certificate with `certSerial`) is listed
 * under `revoked`, else `undefined`.
 */
export function revocationDecision(snapshot: PolicySnapshot, agent: SpiffeId | string, certSerial?: string): Decision | undefined {
  const r = snapshot.revoked;
  if (certSerial !== undefined && r.serials.size > 0 && r.serials.has(normalizeSerial(certSerial))) {
    return { allow: false, revoked: true, reason: `certificate serial ${normalizeSerial(certSerial)} is revoked` };
  }
  if (r.ids.length === 0) return undefined;
  const id = asId(agent);
  for (let i = 0; i < r.ids.length; i++) {
    const m = r.ids[i];
    if (m !== undefined && m.matches(id)) return { allow: false, revoked: true, reason: `${id.toString()} is revoked (revoked.ids[${i}]: ${m.pattern})` };
  }
  return undefined;
}

/** zoneDecision returns a deny when `server` sits in a zone `agent` may not reach, else `undefined`. */
export function zoneDecision(snapshot: PolicySnapshot, agent: SpiffeId | string, server: string): Decision | undefined {
  const zoneName = snapshot.servers.get(server)?.zone;
  if (zoneName === undefined) return undefined;
  const zone = snapshot.zones.get(zoneName);
  const id = asId(agent);
  if (zone !== undefined && zone.agents.some((m) => m.matches(id))) return undefined;
  return { allow: false, zone: zoneName, reason: `server "${server}" is in zone "${zoneName}", which ${id.toString()} may not reach` };
}

function serverDecision(rules: readonly CompiledRule[], agent: string, server: string): Decision {
  for (const rule of rules) {
    if (rule.grants) return { allow: true, ruleId: rule.id, reason: `rule "${rule.id}" grants ${agent} access to server "${server}"` };
  }
  return { allow: false, reason: `no rule grants ${agent} access to server "${server}"` };
}

const KIND_NAMES: Record<CallKind, string> = { tool: 'tool', resource: 'resource', prompt: 'prompt' };

function decideNamed(rules: readonly CompiledRule[], server: string, kind: CallKind, name: string): Decision {
  const what = `${KIND_NAMES[kind]} "${name}"`;
  for (const rule of rules) {
    const p = kind === 'tool' ? rule.toolsDeny.match(name) : kind === 'prompt' ? rule.promptsDeny.match(name) : rule.resourcesDeny.match(name);
    if (p !== undefined) return { allow: false, ruleId: rule.id, reason: `${what} is denied by rule "${rule.id}" (deny "${p}")` };
  }
  for (const rule of rules) {
    const p = kind === 'tool' ? rule.toolsAllow.match(name) : kind === 'prompt' ? rule.promptsAllow.match(name) : rule.resourcesAllow.match(name);
    if (p !== undefined) return { allow: true, ruleId: rule.id, reason: `${what} is allowed by rule "${rule.id}" (allow "${p}")` };
  }
  return { allow: false, reason: `no rule allows ${what} on server "${server}"` };
}

function decideResource(rules: readonly CompiledRule[], server: string, uri: string): Decision {
  const n = normalizeResourceUri(uri);
  if (!n.ok) return { allow: false, reason: `resource URI ${JSON.stringify(uri.slice(0, 256))} is refused: it ${n.reason}` };
  return decideNamed(rules, server, 'resource', n.uri);
}

function decideServerRequest(rules: readonly CompiledRule[], server: string, kind: ServerRequestKind): Decision {
  for (const rule of rules) {
    if (rule.serverRequests[kind] === false) {
      return { allow: false, ruleId: rule.id, reason: `${kind} requests are denied by rule "${rule.id}"` };
    }
  }
  for (const rule of rules) {
    if (rule.serverRequests[kind] === true) {
      return { allow: true, ruleId: rule.id, reason: `${kind} requests are allowed by rule "${rule.id}"` };
    }
  }
  return { allow: false, reason: `no rule allows ${kind} requests from server "${server}"` };
}

/** blockedDecision is the revocation or zone decision that refuses everything, if any. */
function blockedDecision(snapshot: PolicySnapshot, id: SpiffeId, server: string): Decision | undefined {
  return revocationDecision(snapshot, id) ?? zoneDecision(snapshot, id, server);
}

/**
 * mayUseServer decides whether `agent` may open a session to `server`: not revoked, allowed into
 * the server's zone, and some matching rule grants something (a tool, resource, prompt or server
 * request). An undeclared server is refused the same way.
 */
export function mayUseServer(snapshot: PolicySnapshot, agent: SpiffeId | string, server: string): Decision {
  const id = asId(agent);
  return blockedDecision(snapshot, id, server) ?? serverDecision(matchingRules(snapshot, id, server), id.toString(), server);
}

/** toolDecision decides whether `agent` may see and call tool `toolName` on `server`. */
export function toolDecision(snapshot: PolicySnapshot, agent: SpiffeId | string, server: string, toolName: string): Decision {
  const id = asId(agent);
  return blockedDecision(snapshot, id, server) ?? decideNamed(snapshot.index.rulesFor(id, server), server, 'tool', toolName);
}

/** resourceDecision decides whether `agent` may see and read the resource `uri` (normalised first) on `server`. */
export function resourceDecision(snapshot: PolicySnapshot, agent: SpiffeId | string, server: string, uri: string): Decision {
  const id = asId(agent);
  return blockedDecision(snapshot, id, server) ?? decideResource(snapshot.index.rulesFor(id, server), server, uri);
}

/** promptDecision decides whether `agent` may see and get prompt `name` on `server`. */
export function promptDecision(snapshot: PolicySnapshot, agent: SpiffeId | string, server: string, name: string): Decision {
  const id = asId(agent);
  return blockedDecision(snapshot, id, server) ?? decideNamed(snapshot.index.rulesFor(id, server), server, 'prompt', name);
}

/** serverRequestAllowed decides whether `server` may send a `kind` request to `agent`. */
export function serverRequestAllowed(
  snapshot: PolicySnapshot,
  agent: SpiffeId | string,
  server: string,
  kind: ServerRequestKind,
): Decision {
  const id = asId(agent);
  return blockedDecision(snapshot, id, server) ?? decideServerRequest(matchingRules(snapshot, id, server), server, kind);
}

/** connectorMayServe decides whether the connector `connectorId` may register `server`. */
export function connectorMayServe(snapshot: PolicySnapshot, connectorId: SpiffeId | string, server: string): Decision {
  const id = typeof connectorId === 'string' ? connectorId : connectorId.toString();
  const s = snapshot.servers.get(server);
  if (!s) return { allow: false, reason: `server "${server}" is not declared in the policy` };
  if (!s.connectors.has(id)) return { allow: false, reason: `${id} is not listed under servers.${server}.connectors` };
  return { allow: true, reason: `${id} is listed under servers.${server}.connectors` };
}

/** isConnector reports whether `id` is listed as a connector of at least one server. */
export function isConnector(snapshot: PolicySnapshot, id: SpiffeId | string): boolean {
  return snapshot.connectorIds.has(typeof id === 'string' ? id : id.toString());
}

/** ArgRefusal is an argument constraint that refused a call, with the rule that holds it. */
export interface ArgRefusal {
  readonly ruleId: string;
  readonly argument: string;
  readonly constraint: Exclude<ArgCheck, { ok: true }>['constraint'];
  readonly reason: string;
}

/**
 * CallGuard is everything the policy says about one call name (tool, resource or prompt) for one
 * agent on one server: the decision, then — for allowed calls — the argument constraints of every
 * matching rule (tools), the rate limits and the redaction profiles of the rules covering it.
 */
export interface CallGuard {
  readonly decision: Decision;
  /** args holds the argument constraints that apply (tools only), each with its rule. */
  readonly args: readonly { readonly ruleId: string; readonly check: (args: unknown) => ArgCheck }[];
  readonly rates: readonly RateRule[];
  /** redactResults / redactArguments are sorted, distinct profile names; empty for none. */
  readonly redactResults: readonly string[];
  readonly redactArguments: readonly string[];
}

const NONE: readonly never[] = Object.freeze([]);

function callGuard(rules: readonly CompiledRule[], decision: Decision, kind: CallKind, name: string): CallGuard {
  if (!decision.allow) return Object.freeze({ decision, args: NONE, rates: NONE, redactResults: NONE, redactArguments: NONE });
  const args: { ruleId: string; check: (a: unknown) => ArgCheck }[] = [];
  const rates: RateRule[] = [];
  const results = new Set<string>();
  const argProfiles = new Set<string>();
  for (const rule of rules) {
    if (kind === 'tool') {
      for (const a of rule.args) if (a.tools.matches(name)) args.push({ ruleId: rule.id, check: (x) => a.constraints.check(x) });
    }
    if (!ruleCovers(rule, kind, name)) continue;
    if (rule.rate !== undefined) rates.push(rule.rate);
    for (const p of rule.redactResults) results.add(p);
    if (kind === 'tool') for (const p of rule.redactArguments) argProfiles.add(p);
  }
  return Object.freeze({
    decision,
    args: args.length === 0 ? NONE : Object.freeze(args),
    rates: rates.length === 0 ? NONE : Object.freeze(rates),
    redactResults: results.size === 0 ? NONE : Object.freeze([...results].sort()),
    redactArguments: argProfiles.size === 0 ? NONE : Object.freeze([...argProfiles].sort()),
  });
}

/** checkArguments runs every constraint of `guard` on `args` and returns the first refusal. */
export function checkArguments(guard: CallGuard, args: unknown): ArgRefusal | undefined {
  for (const a of guard.args) {
    const r = a.check(args);
    if (!r.ok) return { ruleId: a.ruleId, argument: r.argument, constraint: r.constraint, reason: r.reason };
  }
  return undefined;
}

// Long names are decided but not cached: an agent controls them, and the cache must stay small.
const CACHE_NAME_MAX = 256;
const CACHE_ENTRIES_MAX = 1024;

/**
 * PolicyScope is the policy as one session sees it: the snapshot, one agent, one server, with the
 * matching rules selected once and decisions cached. Sessions hold a scope and rebuild it when the
 * store's snapshot changes, so a decision on the hot path is a map lookup.
 */
export class PolicyScope {
  readonly snapshot: PolicySnapshot;
  readonly agent: SpiffeId;
  readonly server: string;
  readonly rules: readonly CompiledRule[];
  /** session is the {@link mayUseServer} decision for this agent and server. */
  readonly session: Decision;
  /** blocked is the revocation or zone decision that refuses everything here, if any. */
  private readonly blocked: Decision | undefined;
  private readonly caches: Record<CallKind, Map<string, CallGuard>> = { tool: new Map(), resource: new Map(), prompt: new Map() };
  private readonly templateCache = new Map<string, Decision>();
  private readonly requestCache: Partial<Record<ServerRequestKind, Decision>> = {};

  constructor(snapshot: PolicySnapshot, agent: SpiffeId | string, server: string) {
    this.snapshot = snapshot;
    this.agent = asId(agent);
    this.server = server;
    this.blocked = blockedDecision(snapshot, this.agent, server);
    this.rules = this.blocked === undefined ? Object.freeze(matchingRules(snapshot, this.agent, server)) : NONE;
    this.session = this.blocked ?? serverDecision(this.rules, this.agent.toString(), server);
  }

  /** guard returns the {@link CallGuard} for a call of `kind` to `name` (a resource URI is normalised first). */
  guard(kind: CallKind, name: string): CallGuard {
    const cache = this.caches[kind];
    const hit = cache.get(name);
    if (hit !== undefined) return hit;
    const d =
      this.blocked ??
      (kind === 'resource' ? decideResource(this.rules, this.server, name) : decideNamed(this.rules, this.server, kind, name));
    const g = callGuard(this.rules, d, kind, kind === 'resource' ? (normalizeResourceUri(name) as { uri?: string }).uri ?? name : name);
    if (name.length <= CACHE_NAME_MAX) {
      if (cache.size >= CACHE_ENTRIES_MAX) cache.clear();
      cache.set(name, g);
    }
    return g;
  }

  /** tool decides whether the agent may see and call tool `name`. */
  tool(name: string): Decision {
    return this.guard('tool', name).decision;
  }

  /** resource decides whether the agent may see and read the resource `uri`. */
  resource(uri: string): Decision {
    return this.guard('resource', uri).decision;
  }

  /**
   * template decides whether a resource template is listed: its `uriTemplate` text is matched
   * against the resource globs as written (`file:///data/*` lists `file:///data/{name}`). Reads
   * are decided on the concrete URI.
   */
  template(uriTemplate: string): Decision {
    const hit = this.templateCache.get(uriTemplate);
    if (hit !== undefined) return hit;
    const d = this.blocked ?? decideNamed(this.rules, this.server, 'resource', uriTemplate);
    if (uriTemplate.length <= CACHE_NAME_MAX) {
      if (this.templateCache.size >= CACHE_ENTRIES_MAX) this.templateCache.clear();
      this.templateCache.set(uriTemplate, d);
    }
    return d;
  }

  /** prompt decides whether the agent may see and get prompt `name`. */
  prompt(name: string): Decision {
    return this.guard('prompt', name).decision;
  }

  /** serverRequest decides whether the server may send a `kind` request to the agent. */
  serverRequest(kind: ServerRequestKind): Decision {
    return (this.requestCache[kind] ??= this.blocked ?? decideServerRequest(this.rules, this.server, kind));
  }
}
