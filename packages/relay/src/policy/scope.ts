import type { ArgCheck, RateRule } from '@switchboard/guard';
import { ruleCovers, type CallKind, type CompiledRule } from './compile-rule.js';
import type { PolicySnapshot } from './compile.js';
import {
  connectorMayServe,
  decideMethod,
  decideNamed,
  decideResource,
  decideServerRequest,
  isConnector,
  matchingRules,
  revocationDecision,
  serverDecision,
  zoneDecision,
  type PolicySubject,
} from './decide.js';
import type { Decision, ServerRequestKind } from './document.js';
import { normalizeResourceUri } from './uri-glob.js';

/**
 * IdentityPolicy is the policy as one authenticated identity sees it before any server is named:
 * whether it is revoked (its SPIFFE ID or the serial of the certificate it presented), whether it
 * is a connector, and which servers it may serve. It is the first step from identity to decision;
 * {@link PolicyScope} is the next (one server).
 */
export class IdentityPolicy {
  readonly snapshot: PolicySnapshot;
  readonly subject: PolicySubject;
  /** revoked is the deny of a `revoked` entry naming this identity or its certificate, if any. */
  readonly revoked: Decision | undefined;

  constructor(snapshot: PolicySnapshot, subject: PolicySubject) {
    this.snapshot = snapshot;
    this.subject = subject;
    this.revoked = revocationDecision(snapshot, subject);
  }

  /** isConnector reports whether the identity is listed as a connector of some server (and not revoked). */
  get isConnector(): boolean {
    return this.revoked === undefined && isConnector(this.snapshot, this.subject.id);
  }

  /** mayServe decides whether the identity, as a connector, may register `server`. */
  mayServe(server: string): Decision {
    return this.revoked ?? connectorMayServe(this.snapshot, this.subject.id, server);
  }
}

/** ArgRefusal is an argument constraint that refused a call, with the rule that holds it. */
export interface ArgRefusal {
  readonly ruleId: string;
  readonly argument: string;
  readonly constraint: Exclude<ArgCheck, { ok: true }>['constraint'];
  readonly reason: string;
}

/**
 * CallPolicy is everything the policy says about one call name (tool, resource or prompt) for one
 * identity on one server: the decision, then — for allowed calls — the argument constraints of
 * every matching rule (tools), the rate limits and the redaction profiles of the rules covering it.
 */
export interface CallPolicy {
  readonly decision: Decision;
  /** args holds the argument constraints that apply (tools only), each with its rule. */
  readonly args: readonly { readonly ruleId: string; readonly check: (args: unknown) => ArgCheck }[];
  readonly rates: readonly RateRule[];
  /** redactResults / redactArguments are sorted, distinct profile names; empty for none. */
  readonly redactResults: readonly string[];
  readonly redactArguments: readonly string[];
}

const NONE: readonly never[] = Object.freeze([]);

function callPolicy(rules: readonly CompiledRule[], decision: Decision, kind: CallKind, name: string): CallPolicy {
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

/** checkArguments runs every constraint of `call` on `args` and returns the first refusal. */
export function checkArguments(call: CallPolicy, args: unknown): ArgRefusal | undefined {
  for (const a of call.args) {
    const r = a.check(args);
    if (!r.ok) return { ruleId: a.ruleId, argument: r.argument, constraint: r.constraint, reason: r.reason };
  }
  return undefined;
}

// Long names are decided but not cached: an agent controls them, and the cache must stay small.
const CACHE_NAME_MAX = 256;
const CACHE_ENTRIES_MAX = 1024;

/**
 * PolicyScope is the policy as one identity sees one server: the snapshot, the subject (SPIFFE ID
 * and certificate serial), the server, with the matching rules selected once and decisions cached.
 * Revocation is part of it: a revoked subject gets a scope that refuses everything, the session
 * included, with `session.revoked` set. Sessions hold a scope and take a new one when the
 * snapshot changes, so a decision on the hot path is a map lookup.
 */
export class PolicyScope {
  readonly snapshot: PolicySnapshot;
  readonly subject: PolicySubject;
  readonly server: string;
  readonly rules: readonly CompiledRule[];
  /** session decides whether the subject may open a session to the server (revocation, zone, a rule granting something). */
  readonly session: Decision;
  /** blocked is the revocation or zone decision that refuses everything here, if any. */
  private readonly blocked: Decision | undefined;
  private readonly caches: Record<CallKind, Map<string, CallPolicy>> = { tool: new Map(), resource: new Map(), prompt: new Map() };
  private readonly templateCache = new Map<string, Decision>();
  private readonly methodCache = new Map<string, Decision>();
  private readonly requestCache: Partial<Record<ServerRequestKind, Decision>> = {};

  constructor(snapshot: PolicySnapshot, subject: PolicySubject, server: string) {
    this.snapshot = snapshot;
    this.subject = subject;
    this.server = server;
    this.blocked = revocationDecision(snapshot, subject) ?? zoneDecision(snapshot, subject.id, server);
    this.rules = this.blocked === undefined ? Object.freeze(matchingRules(snapshot, subject.id, server)) : NONE;
    this.session = this.blocked ?? serverDecision(this.rules, subject.id.toString(), server);
  }

  /** call returns the {@link CallPolicy} for a call of `kind` to `name` (a resource URI is normalised first). */
  call(kind: CallKind, name: string): CallPolicy {
    const cache = this.caches[kind];
    const hit = cache.get(name);
    if (hit !== undefined) return hit;
    const d =
      this.blocked ??
      (kind === 'resource' ? decideResource(this.rules, this.server, name) : decideNamed(this.rules, this.server, kind, name));
    const c = callPolicy(this.rules, d, kind, kind === 'resource' ? (normalizeResourceUri(name) as { uri?: string }).uri ?? name : name);
    if (name.length <= CACHE_NAME_MAX) {
      if (cache.size >= CACHE_ENTRIES_MAX) cache.clear();
      cache.set(name, c);
    }
    return c;
  }

  /** tool decides whether the subject may see and call tool `name`. */
  tool(name: string): Decision {
    return this.call('tool', name).decision;
  }

  /** resource decides whether the subject may see and read the resource `uri`. */
  resource(uri: string): Decision {
    return this.call('resource', uri).decision;
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

  /** prompt decides whether the subject may see and get prompt `name`. */
  prompt(name: string): Decision {
    return this.call('prompt', name).decision;
  }

  /** method decides whether the subject may send a request whose method the relay does not know. */
  method(method: string): Decision {
    const hit = this.methodCache.get(method);
    if (hit !== undefined) return hit;
    const d = this.blocked ?? decideMethod(this.rules, this.server, method);
    if (method.length <= CACHE_NAME_MAX) {
      if (this.methodCache.size >= CACHE_ENTRIES_MAX) this.methodCache.clear();
      this.methodCache.set(method, d);
    }
    return d;
  }

  /** serverRequest decides whether the server may send a `kind` request to the subject. */
  serverRequest(kind: ServerRequestKind): Decision {
    return (this.requestCache[kind] ??= this.blocked ?? decideServerRequest(this.rules, this.server, kind));
  }
}
