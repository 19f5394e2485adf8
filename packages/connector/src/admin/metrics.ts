import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LinkStatus } from '../link/link-status.js';
import type { BackendTimings } from '../link/session.js';

/**
 * The connector's metrics, through prom-client (its own registry): link and session gauges and
 * every counter, read when `/metrics` is scraped, plus histograms of backend start time and
 * backend latency per server, observed as they happen.
 */

/** MetricsSource is what the gauges and counters are read from. */
export interface MetricsSource {
  links(): LinkStatus[];
  counters(): Readonly<Record<string, number>>;
}

/** LATENCY_BUCKETS (seconds): a stdio round trip (0.1 ms) to a slow tool (30 s). */
export const LATENCY_BUCKETS: readonly number[] = Object.freeze([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
/** SPAWN_BUCKETS (seconds): a pooled start (5 ms) to a slow spawn (10 s). */
export const SPAWN_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);

const COUNTER_HELP: Record<string, string> = {
  sessionsOpened: 'Agent sessions whose backend session started.',
  openFailures: 'OPEN requests answered with OPEN_FAIL.',
  sessionsClosed: 'Agent sessions that ended.',
  backendFailures: 'Backend sessions that failed to start.',
  overflows: 'Sessions closed because their output buffer overflowed.',
  reconnects: 'Links that ended and were redialed.',
  renewals: 'New identities installed: renewals over the relay (POST /v1/renew) and Workload API rotations.',
  relayCertExpiries: "Links replaced because the relay's certificate on them expired (sessions drained, not dropped).",
  egressDenied: 'Destinations refused to contained servers by their egress rules (each reported once per session).',
  renewalFailures: 'Identity renewal attempts a relay did not answer with a new SVID.',
  sessionsDetached: 'Sessions kept after their relay link was lost, waiting to be resumed.',
  sessionsResumed: 'Sessions resumed through a new relay link (the same backend session).',
  resumesRefused: 'Resume attempts refused (unknown or expired session, wrong secret, another agent or server).',
  resumeExpiries: 'Detached sessions closed because no resume came within resume.graceMs.',
  poolHits: 'Sessions of a pooled server that got a pre-spawned process (warm start).',
  poolMisses: 'Sessions of a pooled server that spawned cold (the pool was empty or idle).',
  poolRetired: 'Pre-spawned processes that exited, misbehaved or idled out before serving a session.',
  sharedRestarts: 'Shared backends (isolation: shared) that ended and failed their attached sessions.',
};

/** counterName is the exposition name of a counter key: `egressDenied` → `switchboard_connector_egress_denied_total`. */
export function counterName(key: string): string {
  return `switchboard_connector_${key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`;
}

/** ConnectorMetrics is the registry behind the admin listener's `/metrics`; it is also the links' {@link BackendTimings}. */
export class ConnectorMetrics implements BackendTimings {
  readonly registry = new Registry();
  /** backendStart times OPEN to backend ready (process spawned and initialised, or HTTP session up), by server and result. */
  readonly backendStart: Histogram<'server' | 'result'>;
  /** backendLatency times a request from delivery to the backend until its answer, by server and status. */
  readonly backendLatency: Histogram<'server' | 'status'>;
  private readonly latencyChildren = new Map<string, { ok: Histogram.Internal<'server' | 'status'>; error: Histogram.Internal<'server' | 'status'> }>();

  constructor(source: MetricsSource, counterKeys: readonly string[]) {
    const reg = this.registry;
    new Gauge({
      name: 'switchboard_connector_link_up',
      help: 'Whether the link to a relay is up (1) or not (0).',
      labelNames: ['relay'],
      registers: [reg],
      collect() {
        this.reset();
        for (const l of source.links()) this.set({ relay: l.relay }, l.state === 'up' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'switchboard_connector_sessions_open',
      help: 'Agent sessions open now.',
      labelNames: ['relay'],
      registers: [reg],
      collect() {
        this.reset();
        for (const l of source.links()) this.set({ relay: l.relay }, l.sessions);
      },
    });
    for (const key of counterKeys) {
      new Counter({
        name: counterName(key),
        help: COUNTER_HELP[key] ?? key,
        registers: [reg],
        collect() {
          this.reset();
          this.inc(source.counters()[key] ?? 0);
        },
      });
    }
    this.backendStart = new Histogram({
      name: 'switchboard_connector_backend_start_seconds',
      help: 'Backend session start: from OPEN to the backend ready (stdio: spawned, sandboxed and initialised; HTTP: session up), by server and result (ok, failed).',
      labelNames: ['server', 'result'],
      buckets: [...SPAWN_BUCKETS],
      registers: [reg],
    });
    this.backendLatency = new Histogram({
      name: 'switchboard_connector_backend_request_seconds',
      help: 'Requests to a backend: from delivering the request to its answer, by server and status (ok, error). Requests over 64 KiB are not timed.',
      labelNames: ['server', 'status'],
      buckets: [...LATENCY_BUCKETS],
      registers: [reg],
    });
  }

  started(server: string, seconds: number, ok: boolean): void {
    this.backendStart.observe({ server, result: ok ? 'ok' : 'failed' }, seconds);
  }

  answered(server: string, seconds: number, ok: boolean): void {
    let c = this.latencyChildren.get(server);
    if (c === undefined) {
      c = { ok: this.backendLatency.labels(server, 'ok'), error: this.backendLatency.labels(server, 'error') };
      this.latencyChildren.set(server, c);
    }
    (ok ? c.ok : c.error).observe(seconds);
  }

  /** text renders every metric in the Prometheus text exposition format (0.0.4). */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
