import { GuardError, redactJsonValue, type RedactionCounts, type Release } from '@switchboard/guard';
import { CloseCode } from '@switchboard/protocol';
import type { PeerIdentity } from '../auth/peer-auth.js';
import type { UnknownToolReply } from '../config/limits.js';
import { isPlainObject } from '@switchboard/common/config';
import { Methods, keyJson, type RequestKey } from '../message/jsonrpc.js';
import { paramsOf, type RequestParams } from '../message/request-params.js';
import { JsonType, spanString, type MessageShape } from '../message/strict-json.js';
import type { DenyReason } from '../metrics.js';
import type { Decision } from '../policy/document.js';
import { checkArguments, type CallPolicy, type PolicyScope } from '../policy/scope.js';
import type { EnforcedSession, Enforcement } from './enforcement.js';
import { ListFilter } from './list-filter.js';
import {
  LIST_CHANGED,
  type ListKind,
  argumentDeniedReply,
  invalidNameReply,
  invalidParamsReply,
  promptDeniedReply,
  rateLimitedReply,
  resourceDeniedReply,
  unexaminableResultReply,
  unknownToolReply,
} from './refusals.js';
import { Req } from './request-kind.js';

/** EnforcerHost is what a {@link SessionEnforcer} needs of its session. */
export interface EnforcerHost {
  readonly server: string;
  readonly agent: PeerIdentity;
  /** connectorId is the SPIFFE ID of the connector serving the session. */
  readonly connectorId: string;
  readonly unknownToolStyle: UnknownToolReply;
  /** notify writes a message the relay composed to the agent. */
  notify(text: string): void;
  /** close ends the session from the relay's side (connector told, outstanding requests answered). */
  close(code: number, reason: string): void;
}

/** Admission is the outcome of {@link SessionEnforcer.admit}: forward (maybe rewritten) or answer in the server's place. */
export type Admission =
  | {
      readonly ok: true;
      readonly method: string;
      readonly name: string | null;
      readonly decision: Decision;
      /** record is false for requests that are not decided one by one (lists). */
      readonly record: boolean;
      /** payload replaces the request's bytes (arguments redacted), when set. */
      readonly payload: Buffer | undefined;
    }
  | {
      readonly ok: false;
      readonly method: string;
      readonly name: string | null;
      readonly decision: Decision;
      readonly record: boolean;
      readonly reply: string;
      readonly deny: DenyReason;
    };

/** Forwarded is what the session sends the agent for a tracked response, and what was redacted. */
export interface Forwarded {
  readonly payload: Buffer | string;
  readonly redactions: Readonly<RedactionCounts> | undefined;
}

interface Pending {
  readonly kind: Req;
  /** cursor: the list request asked for a further page. */
  readonly cursor: boolean;
  readonly releases: readonly Release[] | undefined;
  readonly redact: readonly string[];
}

const NO_RELEASES: readonly Release[] = Object.freeze([]);
const NO_PROFILES: readonly string[] = Object.freeze([]);
const LIST_PENDING: Record<number, Pending> = {};
for (const k of [Req.TOOLS_LIST, Req.RESOURCES_LIST, Req.TEMPLATES_LIST, Req.PROMPTS_LIST]) {
  LIST_PENDING[k] = Object.freeze({ kind: k, cursor: false, releases: undefined, redact: NO_PROFILES });
  LIST_PENDING[k + 100] = Object.freeze({ kind: k, cursor: true, releases: undefined, redact: NO_PROFILES });
}

const LIST_DECISION: Decision = Object.freeze({ allow: true, reason: 'list requests pass; their results are filtered' });

/**
 * SessionEnforcer is the policy enforcement of one agent session, beside the splice that carries
 * it: it decides tools/call, resources/read and /subscribe, prompts/get and completion/complete
 * (policy, pinning, argument constraints, rate limits, in that order), redacts arguments and
 * results, filters every list result, tracks which tools this session was shown (pinning), and
 * reacts to policy swaps and pin approvals with list_changed notifications or by closing the
 * session.
 */
export class SessionEnforcer implements EnforcedSession {
  readonly server: string;
  private readonly enforcement: Enforcement;
  private readonly host: EnforcerHost;
  private readonly agentId: string;
  private scope_: PolicyScope;
  private readonly pending = new Map<RequestKey, Pending>();
  private readonly lists: ListFilter;
  /** relayListed is set once the relay listed the server's tools itself for this session (at most once). */
  private relayListed = false;

  constructor(enforcement: Enforcement, host: EnforcerHost, scope: PolicyScope) {
    this.enforcement = enforcement;
    this.host = host;
    this.server = host.server;
    this.agentId = host.agent.id.toString();
    this.scope_ = scope;
    this.lists = new ListFilter(enforcement.pins, enforcement.inventory, host.server, host.connectorId);
  }

  /** agent is the session's identity now (it changes when a renewed certificate is accepted). */
  get agent(): PeerIdentity {
    return this.host.agent;
  }

  /** scope is the policy as this session sees it now. */
  get scope(): PolicyScope {
    return this.scope_;
  }

  /** start registers the session with the relay-wide enforcement (policy swaps, approvals). */
  start(): void {
    this.enforcement.add(this);
  }

  /**
   * admit decides an agent request of `kind` (not PLAIN); `params` is its parsed-once `params`.
   * Lists always pass (their results are filtered); governed calls pass policy, pinning, argument
   * constraints and rate limits in that order, each refusal with its own answer. A passing call
   * holds its rate-limit slots until {@link response} or {@link settle}.
   */
  admit(buf: Buffer, shape: MessageShape, kind: Req, key: RequestKey, params: RequestParams | null): Admission {
    const idJson = keyJson(key);
    switch (kind) {
      case Req.TOOLS_LIST:
      case Req.RESOURCES_LIST:
      case Req.TEMPLATES_LIST:
      case Req.PROMPTS_LIST: {
        const cursor = params !== null && params.value.cursor !== undefined;
        this.pending.set(key, LIST_PENDING[cursor ? kind + 100 : kind] as Pending);
        return { ok: true, method: spanString(buf, shape.method), name: null, decision: LIST_DECISION, record: false, payload: undefined };
      }
      case Req.TOOLS_CALL:
        return this.toolCall(buf, shape, key, idJson, params);
      case Req.PROMPTS_GET: {
        const method = 'prompts/get';
        if (shape.name.type !== JsonType.STRING) return invalid(method, invalidNameReply(idJson, 'name'));
        const name = spanString(buf, shape.name);
        const c = this.scope_.call('prompt', name);
        if (!c.decision.allow) return refused(method, name, c.decision, promptDeniedReply(idJson), 'prompt_denied');
        return this.limitAndTrack(method, name, c, key, idJson, Req.PROMPTS_GET);
      }
      case Req.RESOURCES_READ:
      case Req.RESOURCES_SUBSCRIBE: {
        const method = kind === Req.RESOURCES_READ ? 'resources/read' : 'resources/subscribe';
        const uri = paramsOf(params).uri;
        if (typeof uri !== 'string') return invalid(method, invalidNameReply(idJson, 'uri'));
        const c = this.scope_.call('resource', uri);
        if (!c.decision.allow) return refused(method, uri, c.decision, resourceDeniedReply(idJson), 'resource_denied');
        if (kind === Req.RESOURCES_SUBSCRIBE) return { ok: true, method, name: uri, decision: c.decision, record: true, payload: undefined };
        return this.limitAndTrack(method, uri, c, key, idJson, Req.RESOURCES_READ);
      }
      case Req.COMPLETE:
        return this.completion(paramsOf(params), idJson);
      default:
        return { ok: true, method: spanString(buf, shape.method), name: null, decision: LIST_DECISION, record: false, payload: undefined };
    }
  }

  private toolCall(buf: Buffer, shape: MessageShape, key: RequestKey, idJson: string, params: RequestParams | null): Admission {
    const method = Methods.toolsCall.plain;
    // params.name is a string only inside an object params, so `params` is set from here on.
    if (shape.name.type !== JsonType.STRING || params === null) return invalid(method, invalidParamsReply(idJson));
    const name = spanString(buf, shape.name);
    const c = this.scope_.call('tool', name);
    const unknown = (): string => unknownToolReply(this.host.unknownToolStyle, idJson, name);
    if (!c.decision.allow) return refused(method, name, c.decision, unknown(), 'tool_denied');
    const pins = this.enforcement.pins;
    const mode = pins.modeFor(this.scope_.snapshot.servers.get(this.server));
    if (mode !== undefined && !(this.lists.shown(name) && pins.store.isCallable(this.server, name, mode))) {
      const why = this.lists.shown(name)
        ? `its definition differs from the pin or awaits approval (${mode} pinning)`
        : 'it was not in a tools/list this session received (pinning checks definitions there)';
      return refused(method, name, { allow: false, reason: `tool "${name}" is hidden: ${why}` }, unknown(), 'tool_unpinned');
    }
    if (c.args.length > 0) {
      const refusal = checkArguments(c, params.arguments);
      if (refusal !== undefined) {
        return refused(method, name, { allow: false, ruleId: refusal.ruleId, reason: refusal.reason }, argumentDeniedReply(idJson, refusal.argument, refusal.constraint), 'args_denied');
      }
    }
    const limited = this.acquire(c);
    if (!Array.isArray(limited)) {
      const l = limited as Exclude<typeof limited, readonly Release[]>;
      return refused(method, name, l.decision, rateLimitedReply(idJson, l.retryAfterMs, l.limit), 'rate_limited');
    }
    let payload: Buffer | undefined;
    let decision = c.decision;
    const args = c.redactArguments.length > 0 ? params.arguments : undefined;
    if (args !== undefined) {
      try {
        const r = redactJsonValue(args, this.enforcement.profile(c.redactArguments));
        if (r.total > 0) {
          payload = params.withArguments(r.value);
          this.enforcement.metrics.redacted(r.counts);
          decision = { ...decision, reason: `${decision.reason}; redacted in arguments: ${countsText(r.counts)}` };
        }
      } catch (err) {
        for (const r of limited) r();
        if (!(err instanceof GuardError)) throw err;
        return refused(method, name, { allow: false, reason: 'arguments nested too deeply to examine for secrets' }, unexaminableResultReply(idJson), 'redaction_failed');
      }
    }
    this.pending.set(key, { kind: Req.TOOLS_CALL, cursor: false, releases: limited.length === 0 ? undefined : limited, redact: c.redactResults });
    return { ok: true, method, name, decision, record: true, payload };
  }

  private limitAndTrack(method: string, name: string, c: CallPolicy, key: RequestKey, idJson: string, kind: Req): Admission {
    const limited = this.acquire(c);
    if (!Array.isArray(limited)) {
      const l = limited as Exclude<typeof limited, readonly Release[]>;
      return refused(method, name, l.decision, rateLimitedReply(idJson, l.retryAfterMs, l.limit), 'rate_limited');
    }
    this.pending.set(key, { kind, cursor: false, releases: limited.length === 0 ? undefined : limited, redact: c.redactResults });
    return { ok: true, method, name, decision: c.decision, record: true, payload: undefined };
  }

  /** acquire takes a slot of every rate limit covering the call, or refuses (releasing what it took). */
  private acquire(c: CallPolicy): readonly Release[] | { decision: Decision; retryAfterMs: number; limit: 'rate' | 'concurrent' } {
    if (c.rates.length === 0) return NO_RELEASES;
    const taken: Release[] = [];
    for (const ruleRate of c.rates) {
      // This replica's share of the rule (relay.yaml enforcement.replicas).
      const rate = this.enforcement.share(ruleRate);
      const d = this.enforcement.limiter.acquire(this.agentId, rate);
      if (!d.ok) {
        for (const r of taken) r();
        const what = d.limit === 'rate' ? `${rate.calls} calls per ${rate.perMs} ms` : `${rate.concurrent} calls in flight`;
        return {
          decision: { allow: false, ruleId: rate.id, reason: `rate limit of rule "${rate.id}" (${what}) reached; retry after ${d.retryAfterMs} ms` },
          retryAfterMs: d.retryAfterMs,
          limit: d.limit,
        };
      }
      taken.push(d.release);
    }
    return taken;
  }

  private completion(params: Readonly<Record<string, unknown>>, idJson: string): Admission {
    const method = 'completion/complete';
    const ref = isPlainObject(params.ref) ? params.ref : {};
    if (ref.type === 'ref/prompt' && typeof ref.name === 'string') {
      const d = this.scope_.prompt(ref.name);
      return d.allow ? { ok: true, method, name: ref.name, decision: d, record: true, payload: undefined } : refused(method, ref.name, d, promptDeniedReply(idJson), 'prompt_denied');
    }
    if (ref.type === 'ref/resource' && typeof ref.uri === 'string') {
      const d = this.scope_.template(ref.uri);
      return d.allow ? { ok: true, method, name: ref.uri, decision: d, record: true, payload: undefined } : refused(method, ref.uri, d, resourceDeniedReply(idJson), 'resource_denied');
    }
    return invalid(method, invalidNameReply(idJson, 'ref'));
  }

  /**
   * wantsToolList reports whether a `tools/call` (just scanned) should wait for the relay to list
   * the server's tools itself first: pinning applies, the policy allows the tool, and this session
   * has never received a tools/list — a client that calls a tool it knows without listing. The
   * relay then pins what the server shows (tofu) and decides the call on that, instead of refusing
   * a tool it has never seen. Once per session.
   */
  wantsToolList(buf: Buffer, shape: MessageShape): boolean {
    if (this.relayListed || this.lists.listed('tools') || shape.name.type !== JsonType.STRING) return false;
    if (this.enforcement.pins.modeFor(this.scope_.snapshot.servers.get(this.server)) === undefined) return false;
    const name = spanString(buf, shape.name);
    return !this.lists.shown(name) && this.scope_.call('tool', name).decision.allow;
  }

  /** listTools registers the relay's own tools/list request `key` (a further page with `cursor`); its result pins and is dropped. */
  listTools(key: RequestKey, cursor: boolean): void {
    this.relayListed = true;
    this.pending.set(key, LIST_PENDING[cursor ? Req.TOOLS_LIST + 100 : Req.TOOLS_LIST] as Pending);
  }

  // ---------------------------------------------------------------- responses

  /**
   * response handles the server's response to a tracked request (`buf`, already scanned): list
   * results are filtered (pinning first, then policy), call results redacted; rate-limit slots are
   * released. Returns what to send the agent and what was redacted.
   */
  response(key: RequestKey, buf: Buffer, shape: MessageShape): Forwarded {
    const p = this.pending.get(key);
    if (p === undefined) return { payload: buf, redactions: undefined };
    this.pending.delete(key);
    if (p.releases !== undefined) for (const r of p.releases) r();
    if (shape.result.type !== JsonType.OBJECT) return { payload: buf, redactions: undefined };
    switch (p.kind) {
      case Req.TOOLS_LIST:
        return { payload: this.lists.filterTools(buf, p.cursor, this.scope_, () => this.enforcement.notifyServer(this.server, 'tools', this)), redactions: undefined };
      case Req.RESOURCES_LIST:
        return { payload: this.lists.filterList(buf, 'resources', p.cursor, this.scope_), redactions: undefined };
      case Req.TEMPLATES_LIST:
        return { payload: this.lists.filterList(buf, 'resourceTemplates', p.cursor, this.scope_), redactions: undefined };
      case Req.PROMPTS_LIST:
        return { payload: this.lists.filterList(buf, 'prompts', p.cursor, this.scope_), redactions: undefined };
      default:
        return p.redact.length === 0 ? { payload: buf, redactions: undefined } : this.redactResult(key, buf, p.redact);
    }
  }

  private redactResult(key: RequestKey, buf: Buffer, profiles: readonly string[]): Forwarded {
    const msg = JSON.parse(buf.toString('utf8')) as { result: unknown };
    try {
      const r = redactJsonValue(msg.result, this.enforcement.profile(profiles));
      if (r.total === 0) return { payload: buf, redactions: undefined };
      msg.result = r.value;
      this.enforcement.metrics.redacted(r.counts);
      return { payload: JSON.stringify(msg), redactions: r.counts };
    } catch (err) {
      if (!(err instanceof GuardError)) throw err;
      this.enforcement.metrics.denied.redaction_failed++;
      return { payload: unexaminableResultReply(keyJson(key)), redactions: undefined };
    }
  }

  /** settle releases what a request holds when it will get no response through {@link response} (cancelled, refused by the audit gate). */
  settle(key: RequestKey): void {
    const p = this.pending.get(key);
    if (p === undefined) return;
    this.pending.delete(key);
    if (p.releases !== undefined) for (const r of p.releases) r();
  }

  /** end releases everything and unregisters the session (it ended). */
  end(): void {
    for (const p of this.pending.values()) if (p.releases !== undefined) for (const r of p.releases) r();
    this.pending.clear();
    this.enforcement.remove(this);
  }

  // ---------------------------------------------------------------- policy changes

  /**
   * policyChanged takes the session's scope from the policy in force and returns its session
   * decision. A refused session is closed — 4401 when its identity or certificate was revoked,
   * 4403 when access was withdrawn; a session that stays is told about every list whose visible
   * part changed.
   */
  policyChanged(): Decision {
    const previous = this.scope_;
    const next = this.enforcement.policy.scope(this.agent, this.server);
    this.scope_ = next;
    const d = next.session;
    if (!d.allow) {
      if (d.revoked) this.host.close(CloseCode.IDENTITY_REVOKED, 'identity revoked');
      else this.host.close(CloseCode.FORBIDDEN, 'access to this server was withdrawn by policy');
      return d;
    }
    for (const what of this.lists.changes(previous, next)) this.listChanged(what);
    return d;
  }

  /** listChanged tells the agent that a list changed, if it ever received that list. */
  listChanged(what: ListKind): void {
    if (this.lists.listed(what)) this.host.notify(LIST_CHANGED[what]);
  }
}

function invalid(method: string, reply: string): Admission {
  return { ok: false, method, name: null, decision: { allow: false, reason: 'malformed params' }, record: false, reply, deny: 'invalid_request' };
}

function refused(method: string, name: string, decision: Decision, reply: string, deny: DenyReason): Admission {
  return { ok: false, method, name, decision, record: true, reply, deny };
}

function countsText(counts: Readonly<RedactionCounts>): string {
  return Object.entries(counts)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
}
