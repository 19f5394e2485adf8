import { SpiffeId } from '@switchboard/pki';
import type { PolicySnapshot } from './compile.js';
import { revocationDecision, zoneDecision } from './decide.js';
import { PolicyScope } from './scope.js';
import type { Decision } from './document.js';

/** Explanation is the answer to "may this agent call this tool on this server, and why?". */
export interface Explanation {
  readonly agent: string;
  readonly server: string;
  readonly tool: string;
  /** session is whether the agent may open a session to the server at all. */
  readonly session: Decision;
  /** decision is the tool decision (a refused session refuses every tool). */
  readonly decision: Decision;
  /** lines say, step by step, what was considered; for people. */
  readonly lines: readonly string[];
}

/**
 * explainToolDecision walks through the decision for one agent, server and tool the way the relay
 * takes it — revocation, zone, matching rules, session grant, tool deny/allow — and adds what
 * would apply to an allowed call: argument constraints, rate limits, redaction, pinning. Throws a
 * `PkiError` when `agent` is not a SPIFFE ID.
 *
 * @example
 * const e = explainToolDecision(snapshot, 'spiffe://example.org/agent/support/alice', 'crm', 'delete_customer');
 * e.decision; // { allow: false, ruleId: 'support-reads-crm', reason: 'tool "delete_customer" is denied by rule … (deny "*delete*")' }
 */
export function explainToolDecision(snapshot: PolicySnapshot, agent: string, server: string, tool: string): Explanation {
  const id = SpiffeId.parse(agent);
  const lines: string[] = [];
  const scope = new PolicyScope(snapshot, { id }, server);
  const srv = snapshot.servers.get(server);

  if (!id.memberOf(snapshot.trustDomain)) lines.push(`agent ${agent} is outside trust domain ${snapshot.trustDomain.name}: no rule can match it`);
  const revoked = revocationDecision(snapshot, { id });
  if (revoked) lines.push(`revoked: ${revoked.reason}`);
  if (srv === undefined) {
    lines.push(`server "${server}" is not declared under servers (agents get the same 403 as for a forbidden server)`);
  } else {
    if (srv.zone !== undefined) {
      const z = zoneDecision(snapshot, id, server);
      lines.push(z ? `zone: ${z.reason}` : `zone: server "${server}" is in zone "${srv.zone}", which the agent may reach`);
    }
    lines.push(`pinning: ${srv.pinning ?? "the relay's default (tofu with a pin store, else off)"}`);
    if (srv.identityToBackend) lines.push('identity to backend: the relay sends the backend a JWT-SVID naming the agent');
  }

  const rules = revoked || !srv ? [] : snapshot.index.rulesFor(id, server);
  if (rules.length === 0) lines.push('matching rules: none');
  for (const r of rules) {
    const via = r.agents.find((m) => m.matches(id))?.pattern ?? '?';
    const parts: string[] = [];
    const deny = r.toolsDeny.match(tool);
    const allow = r.toolsAllow.match(tool);
    if (deny !== undefined) parts.push(`denies the tool (deny "${deny}")`);
    else if (allow !== undefined) parts.push(`allows the tool (allow "${allow}")`);
    else parts.push('says nothing about the tool');
    if (r.grants) parts.push('grants the session');
    lines.push(`rule "${r.id}" (rules[${r.index}]) matches: agent via ${via}, server via "${r.servers.match(server) ?? '?'}"; ${parts.join('; ')}`);
  }

  lines.push(`session: ${scope.session.allow ? 'allowed' : 'refused'} — ${scope.session.reason}`);
  const call = scope.call('tool', tool);
  const decision = call.decision;
  if (decision.allow) {
    for (const a of call.args) lines.push(`arguments: constrained by rule "${a.ruleId}"`);
    for (const r of snapshot.rules) {
      if (!rules.includes(r)) continue;
      for (const a of r.args) if (a.tools.matches(tool)) lines.push(`  rule "${r.id}" args.${a.tools.pattern}: ${a.constraints.names.join(', ')}`);
    }
    for (const rate of call.rates) {
      const parts = [];
      if (rate.calls !== undefined) parts.push(`${rate.calls} calls per ${rate.perMs} ms`);
      if (rate.concurrent !== undefined) parts.push(`${rate.concurrent} in flight`);
      lines.push(`rate: rule "${rate.id}" allows ${parts.join(' and ')} per agent`);
    }
    if (call.redactResults.length > 0) lines.push(`redaction of results: ${call.redactResults.join(', ')}`);
    if (call.redactArguments.length > 0) lines.push(`redaction of arguments: ${call.redactArguments.join(', ')}`);
  }
  const verdict = decision.allow ? 'ALLOW' : 'DENY';
  const by = decision.ruleId !== undefined ? `rule "${decision.ruleId}"` : decision.zone !== undefined ? `zone "${decision.zone}"` : decision.revoked ? 'revoked' : 'default deny';
  lines.push(`decision: ${verdict} by ${by} — ${decision.reason}`);
  return { agent: id.toString(), server, tool, session: scope.session, decision, lines };
}
