import { SpiffeId } from '@switchboard/pki';
import type { CompiledRule, PolicySnapshot } from './compile.js';
import type { Decision, ServerRequestKind } from './document.js';

/**
 * Policy decisions: pure functions of a {@link PolicySnapshot}. Default deny; a deny in any
 * matching rule beats every allow; the deciding rule is named in the decision.
 */

function asId(id: SpiffeId | string): SpiffeId {
  return typeof id === 'string' ? SpiffeId.parse(id) : id;
}

/** matchingRules lists the rules whose `agents` match `agent` and whose `servers` match `server`. */
export function matchingRules(snapshot: PolicySnapshot, agent: SpiffeId | string, server: string): CompiledRule[] {
  const id = asId(agent);
  if (!snapshot.servers.has(server)) return [];
  const out: CompiledRule[] = [];
  for (const rule of snapshot.rules) {
    if (rule.servers.match(server) === undefined) continue;
    for (const m of rule.agents) {
      if (m.matches(id)) {
        out.push(rule);
        break;
      }
    }
  }
  return out;
}

function serverDecision(rules: readonly CompiledRule[], agent: string, server: string): Decision {
  for (const rule of rules) {
    if (rule.grants) return { allow: true, ruleId: rule.id, reason: `rule "${rule.id}" grants ${agent} access to server "${server}"` };
  }
  return { allow: false, reason: `no rule grants ${agent} access to server "${server}"` };
}

function decideTool(rules: readonly CompiledRule[], server: string, tool: string): Decision {
  for (const rule of rules) {
    const p = rule.toolsDeny.match(tool);
    if (p !== undefined) return { allow: false, ruleId: rule.id, reason: `tool "${tool}" is denied by rule "${rule.id}" (deny "${p}")` };
  }
  for (const rule of rules) {
    const p = rule.toolsAllow.match(tool);
    if (p !== undefined) return { allow: true, ruleId: rule.id, reason: `tool "${tool}" is allowed by rule "${rule.id}" (allow "${p}")` };
  }
  return { allow: false, reason: `no rule allows tool "${tool}" on server "${server}"` };
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

/**
 * mayUseServer decides whether `agent` may open a session to `server`: some matching rule must
 * grant something (a tool or a server request). An undeclared server is refused the same way.
 */
export function mayUseServer(snapshot: PolicySnapshot, agent: SpiffeId | string, server: string): Decision {
  const id = asId(agent);
  return serverDecision(matchingRules(snapshot, id, server), id.toString(), server);
}

/** toolDecision decides whether `agent` may see and call tool `toolName` on `server`. */
export function toolDecision(snapshot: PolicySnapshot, agent: SpiffeId | string, server: string, toolName: string): Decision {
  return decideTool(matchingRules(snapshot, agent, server), server, toolName);
}

/** serverRequestAllowed decides whether `server` may send a `kind` request to `agent`. */
export function serverRequestAllowed(
  snapshot: PolicySnapshot,
  agent: SpiffeId | string,
  server: string,
  kind: ServerRequestKind,
): Decision {
  return decideServerRequest(matchingRules(snapshot, agent, server), server, kind);
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

// Long names are decided but not cached: an agent controls them, and the cache must stay small.
const CACHE_NAME_MAX = 256;
const CACHE_ENTRIES_MAX = 1024;

/**
 * PolicyScope is the policy as one session sees it: the snapshot, one agent, one server, with the
 * matching rules selected once and tool decisions cached. Sessions hold a scope and rebuild it
 * when the store's snapshot changes, so a decision on the hot path is a map lookup.
 */
export class PolicyScope {
  readonly snapshot: PolicySnapshot;
  readonly agent: SpiffeId;
  readonly server: string;
  readonly rules: readonly CompiledRule[];
  /** session is the {@link mayUseServer} decision for this agent and server. */
  readonly session: Decision;
  private readonly toolCache = new Map<string, Decision>();
  private readonly requestCache: Partial<Record<ServerRequestKind, Decision>> = {};

  constructor(snapshot: PolicySnapshot, agent: SpiffeId | string, server: string) {
    this.snapshot = snapshot;
    this.agent = asId(agent);
    this.server = server;
    this.rules = Object.freeze(matchingRules(snapshot, this.agent, server));
    this.session = serverDecision(this.rules, this.agent.toString(), server);
  }

  /** tool decides whether the agent may see and call `name`. */
  tool(name: string): Decision {
    const hit = this.toolCache.get(name);
    if (hit !== undefined) return hit;
    const d = decideTool(this.rules, this.server, name);
    if (name.length <= CACHE_NAME_MAX) {
      if (this.toolCache.size >= CACHE_ENTRIES_MAX) this.toolCache.clear();
      this.toolCache.set(name, d);
    }
    return d;
  }

  /** serverRequest decides whether the server may send a `kind` request to the agent. */
  serverRequest(kind: ServerRequestKind): Decision {
    return (this.requestCache[kind] ??= decideServerRequest(this.rules, this.server, kind));
  }
}
