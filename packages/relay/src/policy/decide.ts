import { SpiffeId } from '@switchboard/pki';
import { type CallKind, type CompiledRule } from './compile-rule.js';
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
 * PolicySubject is who a decision is about: a SPIFFE ID and, when it authenticated with a
 * certificate, that certificate's serial number (hex), so a revoked certificate is refused even
 * while its SPIFFE ID is not. An authenticated peer is one.
 */
export interface PolicySubject {
  readonly id: SpiffeId;
  readonly certSerial?: string | undefined;
}

/**
 * revocationDecision returns a deny when the subject's certificate serial or its SPIFFE ID is
 * listed under `revoked` (the serial first), naming the entry in `revokedBy`; else `undefined`.
 */
export function revocationDecision(snapshot: PolicySnapshot, subject: PolicySubject): Decision | undefined {
  const r = snapshot.revoked;
  const serial = subject.certSerial;
  if (serial !== undefined && r.serials.size > 0) {
    const s = normalizeSerial(serial);
    if (r.serials.has(s)) return { allow: false, revoked: true, revokedBy: `serial:${s}`, reason: `certificate serial ${s} is revoked` };
  }
  for (let i = 0; i < r.ids.length; i++) {
    const m = r.ids[i];
    if (m !== undefined && m.matches(subject.id)) {
      return { allow: false, revoked: true, revokedBy: `id:${m.pattern}`, reason: `${subject.id.toString()} is revoked (revoked.ids[${i}]: ${m.pattern})` };
    }
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

/** @internal serverDecision is the session grant: the first matching rule that grants anything. */
export function serverDecision(rules: readonly CompiledRule[], agent: string, server: string): Decision {
  for (const rule of rules) {
    if (rule.grants) return { allow: true, ruleId: rule.id, reason: `rule "${rule.id}" grants ${agent} access to server "${server}"` };
  }
  return { allow: false, reason: `no rule grants ${agent} access to server "${server}"` };
}

const KIND_NAMES: Record<CallKind, string> = { tool: 'tool', resource: 'resource', prompt: 'prompt' };

/** @internal decideNamed decides a tool, prompt or (normalised) resource name: deny beats allow, default deny. */
export function decideNamed(rules: readonly CompiledRule[], server: string, kind: CallKind, name: string): Decision {
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

/** @internal decideMethod decides a request method the relay does not know: deny beats allow, default deny. */
export function decideMethod(rules: readonly CompiledRule[], server: string, method: string): Decision {
  for (const rule of rules) {
    const p = rule.methodsDeny.match(method);
    if (p !== undefined) return { allow: false, ruleId: rule.id, reason: `method "${method}" is denied by rule "${rule.id}" (deny "${p}")` };
  }
  for (const rule of rules) {
    const p = rule.methodsAllow.match(method);
    if (p !== undefined) return { allow: true, ruleId: rule.id, reason: `method "${method}" is allowed by rule "${rule.id}" (allow "${p}")` };
  }
  return { allow: false, reason: `method "${method}" is not one the relay forwards, and no rule allows it on server "${server}" (rules[].methods.allow)` };
}

/** @internal decideResource normalises a resource URI, then decides it. */
export function decideResource(rules: readonly CompiledRule[], server: string, uri: string): Decision {
  const n = normalizeResourceUri(uri);
  if (!n.ok) return { allow: false, reason: `resource URI ${JSON.stringify(uri.slice(0, 256))} is refused: it ${n.reason}` };
  return decideNamed(rules, server, 'resource', n.uri);
}

/** @internal decideServerRequest decides a server→agent request kind: deny beats allow, default deny. */
export function decideServerRequest(rules: readonly CompiledRule[], server: string, kind: ServerRequestKind): Decision {
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

/** @internal blockedDecision is the revocation or zone decision that refuses everything, if any. */
export function blockedDecision(snapshot: PolicySnapshot, id: SpiffeId, server: string): Decision | undefined {
  return revocationDecision(snapshot, { id }) ?? zoneDecision(snapshot, id, server);
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
