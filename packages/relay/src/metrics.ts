import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { AUDIT_METRICS, type AuditMetricsSnapshot } from './audit/metrics.js';

/** LATENCY_BUCKETS (seconds) cover a loopback hop (0.25 ms) to a slow tool (30 s). */
export const LATENCY_BUCKETS: readonly number[] = Object.freeze([0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
/** SETUP_BUCKETS (seconds) cover a warm start (5 ms) to a slow spawn (10 s). */
export const SETUP_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);

const MCP_METHODS = new Set([
  'initialize', 'ping', 'tools/list', 'tools/call', 'resources/list', 'resources/templates/list', 'resources/read', 'resources/subscribe',
  'resources/unsubscribe', 'prompts/list', 'prompts/get', 'completion/complete', 'logging/setLevel', 'sampling/createMessage', 'elicitation/create',
  'roots/list', 'tasks/get', 'tasks/list', 'tasks/cancel', 'tasks/result',
]);

/** methodLabel bounds the method label: an MCP method as is, anything a peer made up as "other". */
function methodLabel(m: unknown): string {
  return typeof m === 'string' && MCP_METHODS.has(m) ? m : 'other';
}

/** codeLabel bounds the code label: "" for none, a JSON-RPC or Switchboard code as is, else "other". */
function codeLabel(c: unknown): string {
  if (c === undefined || c === null) return '';
  return Number.isInteger(c) && (c as number) >= -32768 && (c as number) <= -32000 ? String(c) : 'other';
}

function bump(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** labelRows turns counts keyed by NUL-joined label values back into labelled rows. */
function labelRows(counts: Map<string, number>, names: readonly string[]): [Record<string, string>, number][] {
  const rows: [Record<string, string>, number][] = [];
  for (const [key, v] of counts) {
    const values = key.split('\0');
    const labels: Record<string, string> = {};
    names.forEach((n, i) => (labels[n] = values[i] ?? ''));
    rows.push([labels, v]);
  }
  return rows;
}

/**
 * Relay counters, exported as Prometheus text on the admin listener and as a plain object from
 * `relay.metrics()`. Counters are plain fields bumped on the hot path; labels are fixed sets.
 */

/** UpgradeRefusal names why an upgrade was refused (the `reason` label). */
export type UpgradeRefusal =
  | 'not_found'
  | 'bad_request'
  | 'bad_subprotocol'
  | 'invalid_svid'
  | 'forbidden'
  | 'no_connector'
  | 'not_a_connector'
  | 'shutting_down'
  | 'revoked'
  | 'resume_unavailable';

/** GuardDrop names why the listener limits closed a connection (the `reason` label). */
export type GuardDrop = 'max_connections' | 'source_connections' | 'source_handshakes' | 'handshake_evicted' | 'upgrade_timeout';
export const GUARD_DROPS: readonly GuardDrop[] = ['max_connections', 'source_connections', 'source_handshakes', 'handshake_evicted', 'upgrade_timeout'];

/** ConnectionGauges is what a listener's connection guard reports for the gauges. */
export interface ConnectionGauges {
  readonly open: number;
  readonly inHandshake: number;
}

/** DenyReason names why a message was refused or dropped (the `reason` label). */
export type DenyReason =
  | 'parse_error'
  | 'batch'
  | 'invalid_request'
  | 'duplicate_key'
  | 'too_deep'
  | 'tool_denied'
  | 'server_request_denied'
  | 'unknown_response_id'
  | 'id_in_flight'
  | 'too_many_in_flight'
  | 'invalid_server_message'
  | 'audit_unavailable'
  | 'binary_frame'
  | 'args_denied'
  | 'resource_denied'
  | 'prompt_denied'
  | 'tool_unpinned'
  | 'rate_limited'
  | 'redaction_failed'
  | 'method_denied';

/** RelayMetricsSnapshot is the value of every counter and gauge at one moment. */
export interface RelayMetricsSnapshot {
  sessionsOpen: number;
  sessionsOpenedTotal: number;
  linksUp: number;
  /** messagesForwarded counts messages passed on, per direction. */
  messagesForwarded: { agentToServer: number; serverToAgent: number };
  /** messagesDenied counts refused or dropped messages by reason. */
  messagesDenied: Record<DenyReason, number>;
  /** upgradesRefused counts refused HTTP upgrades by reason. */
  upgradesRefused: Record<UpgradeRefusal, number>;
  tlsHandshakeFailures: number;
  /** connections is the main listener's open connections and those still in the TLS handshake. */
  connections: { open: number; inHandshake: number };
  /** connectionsDropped counts connections the listener limits closed, by reason (every listener). */
  connectionsDropped: Record<GuardDrop, number>;
  /** sessionsClosed counts closed sessions by WebSocket close code. */
  sessionsClosed: Record<string, number>;
  policyReloads: { ok: number; failed: number };
  linkProtocolErrors: number;
  /** redactions counts values redacted from results and arguments, by kind. */
  redactions: Record<string, number>;
  /** pinEvents counts pin store events (pinned, drift, pending, approved, forgotten). */
  pinEvents: Record<PinEventType, number>;
  /** revocationCloses counts sessions and links closed because their identity was revoked. */
  revocationCloses: number;
  /** expiryCloses counts sessions and links closed because their peer's certificate expired (4402). */
  expiryCloses: number;
  /** egressDenied counts egress.denied events connectors reported (and the trail recorded). */
  egressDenied: number;
  /** renewals counts `POST /v1/renew` answers by result (`issued` or a `RENEW_ERR_…` code). */
  renewals: Record<string, number>;
  /** enrollments counts `POST /v1/enroll` answers by result. */
  enrollments: Record<string, number>;
  /** reauths counts renewed certificates presented on live connections. */
  reauths: { accepted: number; refused: number };
  /** audit is the audit trail's state (null before the relay wired it). */
  audit: AuditMetricsSnapshot | null;
}

/** PinEventType names a pin store event (the `event` label). */
export type PinEventType = 'pinned' | 'drift' | 'pending' | 'approved' | 'forgotten';
const PIN_EVENTS: readonly PinEventType[] = ['pinned', 'drift', 'pending', 'approved', 'forgotten'];

const DENY_REASONS: readonly DenyReason[] = [
  'parse_error', 'batch', 'invalid_request', 'duplicate_key', 'too_deep', 'tool_denied', 'server_request_denied',
  'unknown_response_id', 'id_in_flight', 'too_many_in_flight', 'invalid_server_message', 'audit_unavailable', 'binary_frame',
  'args_denied', 'resource_denied', 'prompt_denied', 'tool_unpinned', 'rate_limited', 'redaction_failed', 'method_denied',
];
const REFUSALS: readonly UpgradeRefusal[] = [
  'not_found', 'bad_request', 'bad_subprotocol', 'invalid_svid', 'forbidden', 'no_connector', 'not_a_connector', 'shutting_down', 'revoked',
  'resume_unavailable',
];

function zeros<K extends string>(keys: readonly K[]): Record<K, number> {
  const o = {} as Record<K, number>;
  for (const k of keys) o[k] = 0;
  return o;
}

/** RelayMetrics holds the relay's counters. */
export class RelayMetrics {
  sessionsOpen = 0;
  sessionsOpenedTotal = 0;
  linksUp = 0;
  forwardedUp = 0;
  forwardedDown = 0;
  tlsHandshakeFailures = 0;
  linkProtocolErrors = 0;
  reloadsOk = 0;
  reloadsFailed = 0;
  readonly denied: Record<DenyReason, number> = zeros(DENY_REASONS);
  readonly connectionsDropped: Record<GuardDrop, number> = zeros(GUARD_DROPS);
  /** guards are the listeners' connection guards, read for the connection gauges. */
  readonly guards: { main?: ConnectionGauges; enrollment?: ConnectionGauges } = {};
  readonly refused: Record<UpgradeRefusal, number> = zeros(REFUSALS);
  readonly closed = new Map<number, number>();
  /** audit reads the audit trail's state; set by startRelay. */
  audit: (() => AuditMetricsSnapshot) | undefined;
  readonly redactions = new Map<string, number>();
  readonly pinEvents: Record<PinEventType, number> = zeros(PIN_EVENTS);
  revocationCloses = 0;
  expiryCloses = 0;
  egressDenied = 0;
  /** reauths counts REAUTH on live links and sessions, accepted and refused. */
  readonly reauths = { accepted: 0, refused: 0 };
  /** renewals counts `POST /v1/renew` answers: `issued`, or the refusal code. */
  readonly renewals = new Map<string, number>();
  /** enrollments counts `POST /v1/enroll` answers: `issued`, or the refusal code. */
  readonly enrollments = new Map<string, number>();

  /** redacted counts redactions by kind (from a redaction's `counts`). */
  redacted(counts: Readonly<Record<string, number>>): void {
    for (const k of Object.keys(counts)) this.redactions.set(k, (this.redactions.get(k) ?? 0) + (counts[k] ?? 0));
  }

  /** sessionClosed counts a session end with its close code. */
  sessionClosed(code: number): void {
    this.closed.set(code, (this.closed.get(code) ?? 0) + 1);
  }

  /** snapshot copies every counter. */
  snapshot(): RelayMetricsSnapshot {
    return {
      sessionsOpen: this.sessionsOpen,
      sessionsOpenedTotal: this.sessionsOpenedTotal,
      linksUp: this.linksUp,
      messagesForwarded: { agentToServer: this.forwardedUp, serverToAgent: this.forwardedDown },
      messagesDenied: { ...this.denied },
      upgradesRefused: { ...this.refused },
      tlsHandshakeFailures: this.tlsHandshakeFailures,
      connections: { open: this.guards.main?.open ?? 0, inHandshake: this.guards.main?.inHandshake ?? 0 },
      connectionsDropped: { ...this.connectionsDropped },
      sessionsClosed: Object.fromEntries([...this.closed].map(([k, v]) => [String(k), v])),
      policyReloads: { ok: this.reloadsOk, failed: this.reloadsFailed },
      linkProtocolErrors: this.linkProtocolErrors,
      redactions: Object.fromEntries(this.redactions),
      pinEvents: { ...this.pinEvents },
      revocationCloses: this.revocationCloses,
      expiryCloses: this.expiryCloses,
      egressDenied: this.egressDenied,
      renewals: Object.fromEntries(this.renewals),
      enrollments: Object.fromEntries(this.enrollments),
      reauths: { ...this.reauths },
      audit: this.audit?.() ?? null,
    };
  }

  /** registry holds every metric for `/metrics` (prom-client; its own registry, not the global one). */
  readonly registry = new Registry();
  /** toolCalls times tools/call at the relay, request forwarded to response forwarded, by server and status. */
  readonly toolCalls: Histogram<'server' | 'status'>;
  /** sessionSetup times an agent session from the accepted upgrade to the backend ready (OPEN_OK), or its failure. */
  readonly sessionSetup: Histogram<'result'>;
  /** handshakes times TLS handshakes on the public listeners, TCP accept to secure. */
  readonly handshakes: Histogram<'listener'>;
  /** auditAppend times a gating record from append to durable (what a call waits in `strict`). */
  readonly auditAppend: Histogram;
  /** auditWrite and auditSync time the trail's batches: the write(2), and the fsync/fdatasync. */
  readonly auditWrite: Histogram;
  readonly auditSync: Histogram;
  /**
   * decisions counts policy decisions on requests, by decision and method; responses counts answers
   * by method, status and error code. Plain counts keyed by the label values joined with NUL (the
   * label sets are bounded: methodLabel, codeLabel), turned into counters when scraped.
   */
  private readonly decisions = new Map<string, number>();
  private readonly responses = new Map<string, number>();
  private readonly toolCallChildren = new Map<string, { ok: Histogram.Internal<'server' | 'status'>; error: Histogram.Internal<'server' | 'status'> }>();

  constructor() {
    const reg = this.registry;
    const value = (name: string, type: 'counter' | 'gauge', help: string, labelNames: readonly string[], rows: () => [Record<string, string>, number][]): void => {
      const collect = function (this: Counter<string> | Gauge<string>): void {
        this.reset();
        for (const [labels, v] of rows()) {
          if (this instanceof Counter) this.inc(labels, v);
          else this.set(labels, v);
        }
      };
      if (type === 'counter') new Counter({ name, help, labelNames, registers: [reg], collect });
      else new Gauge({ name, help, labelNames, registers: [reg], collect });
    };
    const one = (v: () => number): (() => [Record<string, string>, number][]) => () => [[{}, v()]];
    value('switchboard_relay_sessions_open', 'gauge', 'Agent sessions currently open.', [], one(() => this.sessionsOpen));
    value('switchboard_relay_sessions_opened_total', 'counter', 'Agent sessions opened.', [], one(() => this.sessionsOpenedTotal));
    value('switchboard_relay_sessions_closed_total', 'counter', 'Agent sessions closed, by WebSocket close code.', ['code'], () => [...this.closed].map(([code, v]) => [{ code: String(code) }, v]));
    value('switchboard_relay_links_up', 'gauge', 'Connector links currently registered.', [], one(() => this.linksUp));
    value('switchboard_relay_messages_forwarded_total', 'counter', 'JSON-RPC messages passed on, by direction.', ['direction'], () => [
      [{ direction: 'agent_to_server' }, this.forwardedUp],
      [{ direction: 'server_to_agent' }, this.forwardedDown],
    ]);
    value('switchboard_relay_messages_denied_total', 'counter', 'Messages refused or dropped, by reason.', ['reason'], () => DENY_REASONS.map((r) => [{ reason: r }, this.denied[r]]));
    value('switchboard_relay_upgrades_refused_total', 'counter', 'WebSocket upgrades refused before the upgrade, by reason.', ['reason'], () => REFUSALS.map((r) => [{ reason: r }, this.refused[r]]));
    value('switchboard_relay_tls_handshake_failures_total', 'counter', 'TLS handshakes that failed (no, expired or untrusted client certificate, …).', [], one(() => this.tlsHandshakeFailures));
    const listeners = (): ('main' | 'enrollment')[] => (['main', 'enrollment'] as const).filter((l) => this.guards[l] !== undefined);
    value('switchboard_relay_connections_open', 'gauge', 'TCP connections open on a public listener.', ['listener'], () => listeners().map((l) => [{ listener: l }, this.guards[l]?.open ?? 0]));
    value('switchboard_relay_handshakes_in_progress', 'gauge', 'Connections still in the TLS handshake on a public listener.', ['listener'], () => listeners().map((l) => [{ listener: l }, this.guards[l]?.inHandshake ?? 0]));
    value('switchboard_relay_connections_dropped_total', 'counter', 'Connections closed by the listener limits (limits.max*, upgradeTimeoutMs), by reason.', ['reason'], () => GUARD_DROPS.map((r) => [{ reason: r }, this.connectionsDropped[r]]));
    value('switchboard_relay_link_protocol_errors_total', 'counter', 'Connector links closed for breaking the link protocol.', [], one(() => this.linkProtocolErrors));
    value('switchboard_relay_policy_reloads_total', 'counter', 'Policy reloads, by result.', ['result'], () => [
      [{ result: 'ok' }, this.reloadsOk],
      [{ result: 'failed' }, this.reloadsFailed],
    ]);
    value('switchboard_relay_redactions_total', 'counter', 'Values redacted from results and arguments, by kind.', ['kind'], () => [...this.redactions].map(([k, v]) => [{ kind: k }, v]));
    value('switchboard_relay_pin_events_total', 'counter', 'Tool pin store events, by event.', ['event'], () => PIN_EVENTS.map((e) => [{ event: e }, this.pinEvents[e]]));
    value('switchboard_relay_revocation_closes_total', 'counter', 'Sessions and connector links closed because their identity was revoked.', [], one(() => this.revocationCloses));
    value('switchboard_relay_reauths_total', 'counter', 'Renewed certificates presented on live links and sessions, by result.', ['result'], () => [
      [{ result: 'accepted' }, this.reauths.accepted],
      [{ result: 'refused' }, this.reauths.refused],
    ]);
    value('switchboard_relay_enrollments_total', 'counter', 'POST /v1/enroll answers, by result (issued, or the ENROLL_ERR_ code).', ['result'], () => [...this.enrollments].map(([r, v]) => [{ result: r }, v]));
    value('switchboard_relay_renewals_total', 'counter', 'POST /v1/renew answers, by result (issued, or the RENEW_ERR_ code).', ['result'], () => [...this.renewals].map(([r, v]) => [{ result: r }, v]));
    value('switchboard_relay_expiry_closes_total', 'counter', 'Sessions and connector links closed because the certificate they authenticated with expired.', [], one(() => this.expiryCloses));
    value('switchboard_relay_egress_denied_total', 'counter', 'Destinations connectors refused to contained servers (egress.denied records).', [], one(() => this.egressDenied));
    for (const m of AUDIT_METRICS) {
      value(m.name, m.type, m.help, [], () => {
        const a = this.audit?.();
        return a === undefined ? [] : [[{}, m.read(a)]];
      });
    }
    this.toolCalls = new Histogram({
      name: 'switchboard_relay_tool_call_duration_seconds',
      help: 'tools/call at the relay: from forwarding the request to forwarding its response (connector, backend and both hops), by server and status.',
      labelNames: ['server', 'status'],
      buckets: [...LATENCY_BUCKETS],
      registers: [reg],
    });
    this.sessionSetup = new Histogram({
      name: 'switchboard_relay_session_setup_seconds',
      help: 'Agent session setup: from the accepted upgrade to the backend ready (OPEN_OK), by result (ok, resumed, failed).',
      labelNames: ['result'],
      buckets: [...SETUP_BUCKETS],
      registers: [reg],
    });
    this.handshakes = new Histogram({ name: 'switchboard_relay_tls_handshake_seconds', help: 'TLS handshakes on the public listeners, from TCP accept to secure.', labelNames: ['listener'], buckets: [...LATENCY_BUCKETS], registers: [reg] });
    this.auditAppend = new Histogram({ name: 'switchboard_relay_audit_append_seconds', help: 'A gating audit record from append to stored as the durability promises (what a call waits for in strict mode).', buckets: [...LATENCY_BUCKETS], registers: [reg] });
    this.auditWrite = new Histogram({ name: 'switchboard_relay_audit_write_seconds', help: 'One audit batch written to the trail file (write(2)).', buckets: [...LATENCY_BUCKETS], registers: [reg] });
    this.auditSync = new Histogram({ name: 'switchboard_relay_audit_fsync_seconds', help: 'One fsync/fdatasync of the trail file (group commit: one per batch).', buckets: [...LATENCY_BUCKETS], registers: [reg] });
    value('switchboard_relay_decisions_total', 'counter', 'Policy decisions on requests (both directions), by decision and method (methods outside MCP counted as "other").', ['decision', 'method'], () =>
      labelRows(this.decisions, ['decision', 'method']),
    );
    value('switchboard_relay_responses_total', 'counter', 'Answers to recorded agent requests, by method, status (ok, error, aborted) and JSON-RPC error code.', ['method', 'status', 'code'], () =>
      labelRows(this.responses, ['method', 'status', 'code']),
    );
  }

  /**
   * recorded takes an audit record as it is built (off the message path): decisions, responses
   * and tools/call latency come from the records themselves, so `/metrics` and the trail agree.
   */
  recorded(r: Readonly<Record<string, unknown>>): void {
    if (r.type === 'request') {
      bump(this.decisions, `${r.decision === 'allow' ? 'allow' : 'deny'}\0${methodLabel(r.method)}`);
    } else if (r.type === 'response') {
      const status = r.status === 'ok' || r.status === 'error' ? r.status : 'aborted';
      bump(this.responses, `${methodLabel(r.method)}\0${status}\0${codeLabel(r.errorCode)}`);
      if (r.method === 'tools/call' && typeof r.latencyMs === 'number' && status !== 'aborted') {
        const server = String(r.server);
        let c = this.toolCallChildren.get(server);
        if (c === undefined) {
          c = { ok: this.toolCalls.labels(server, 'ok'), error: this.toolCalls.labels(server, 'error') };
          this.toolCallChildren.set(server, c);
        }
        c[status].observe(r.latencyMs / 1000);
      }
    }
  }

  /** prometheus renders every metric in the Prometheus text exposition format (0.0.4). */
  prometheus(): Promise<string> {
    return this.registry.metrics();
  }
}
