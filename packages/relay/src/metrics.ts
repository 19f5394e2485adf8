import { renderAuditMetrics, type AuditMetricsSnapshot } from './audit/metrics.js';

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

  /** prometheus renders the counters in the Prometheus text exposition format (0.0.4). */
  prometheus(): string {
    const out: string[] = [];
    const metric = (name: string, type: 'counter' | 'gauge', help: string, rows: [string, number][]): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of rows) out.push(`${name}${labels} ${v}`);
    };
    metric('switchboard_relay_sessions_open', 'gauge', 'Agent sessions currently open.', [['', this.sessionsOpen]]);
    metric('switchboard_relay_sessions_opened_total', 'counter', 'Agent sessions opened.', [['', this.sessionsOpenedTotal]]);
    metric('switchboard_relay_sessions_closed_total', 'counter', 'Agent sessions closed, by WebSocket close code.',
      [...this.closed].map(([code, v]) => [`{code="${code}"}`, v]));
    metric('switchboard_relay_links_up', 'gauge', 'Connector links currently registered.', [['', this.linksUp]]);
    metric('switchboard_relay_messages_forwarded_total', 'counter', 'JSON-RPC messages passed on, by direction.', [
      ['{direction="agent_to_server"}', this.forwardedUp],
      ['{direction="server_to_agent"}', this.forwardedDown],
    ]);
    metric('switchboard_relay_messages_denied_total', 'counter', 'Messages refused or dropped, by reason.',
      DENY_REASONS.map((r) => [`{reason="${r}"}`, this.denied[r]]));
    metric('switchboard_relay_upgrades_refused_total', 'counter', 'WebSocket upgrades refused before the upgrade, by reason.',
      REFUSALS.map((r) => [`{reason="${r}"}`, this.refused[r]]));
    metric('switchboard_relay_tls_handshake_failures_total', 'counter', 'TLS handshakes that failed (no, expired or untrusted client certificate, …).',
      [['', this.tlsHandshakeFailures]]);
    const listeners = (['main', 'enrollment'] as const).filter((l) => this.guards[l] !== undefined);
    metric('switchboard_relay_connections_open', 'gauge', 'TCP connections open on a public listener.',
      listeners.map((l) => [`{listener="${l}"}`, this.guards[l]?.open ?? 0]));
    metric('switchboard_relay_handshakes_in_progress', 'gauge', 'Connections still in the TLS handshake on a public listener.',
      listeners.map((l) => [`{listener="${l}"}`, this.guards[l]?.inHandshake ?? 0]));
    metric('switchboard_relay_connections_dropped_total', 'counter', 'Connections closed by the listener limits (limits.max*, upgradeTimeoutMs), by reason.',
      GUARD_DROPS.map((r) => [`{reason="${r}"}`, this.connectionsDropped[r]]));
    metric('switchboard_relay_link_protocol_errors_total', 'counter', 'Connector links closed for breaking the link protocol.',
      [['', this.linkProtocolErrors]]);
    metric('switchboard_relay_policy_reloads_total', 'counter', 'Policy reloads, by result.', [
      ['{result="ok"}', this.reloadsOk],
      ['{result="failed"}', this.reloadsFailed],
    ]);
    metric('switchboard_relay_redactions_total', 'counter', 'Values redacted from results and arguments, by kind.',
      [...this.redactions].map(([k, v]) => [`{kind="${k}"}`, v]));
    metric('switchboard_relay_pin_events_total', 'counter', 'Tool pin store events, by event.',
      PIN_EVENTS.map((e) => [`{event="${e}"}`, this.pinEvents[e]]));
    metric('switchboard_relay_revocation_closes_total', 'counter', 'Sessions and connector links closed because their identity was revoked.',
      [['', this.revocationCloses]]);
    metric('switchboard_relay_reauths_total', 'counter', 'Renewed certificates presented on live links and sessions, by result.', [
      ['{result="accepted"}', this.reauths.accepted],
      ['{result="refused"}', this.reauths.refused],
    ]);
    metric('switchboard_relay_enrollments_total', 'counter', 'POST /v1/enroll answers, by result (issued, or the ENROLL_ERR_ code).',
      [...this.enrollments].map(([result, v]) => [`{result="${result}"}`, v]));
    metric('switchboard_relay_renewals_total', 'counter', 'POST /v1/renew answers, by result (issued, or the RENEW_ERR_ code).',
      [...this.renewals].map(([result, v]) => [`{result="${result}"}`, v]));
    metric('switchboard_relay_expiry_closes_total', 'counter', 'Sessions and connector links closed because the certificate they authenticated with expired.',
      [['', this.expiryCloses]]);
    metric('switchboard_relay_egress_denied_total', 'counter', 'Destinations connectors refused to contained servers (egress.denied records).',
      [['', this.egressDenied]]);
    if (this.audit) out.push(...renderAuditMetrics(this.audit()));
    return `${out.join('\n')}\n`;
  }
}
