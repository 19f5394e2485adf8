import type { SpiffeId } from '@switchboard/pki';
import type { Logger } from 'pino';
import type { AuditSink } from '../audit/sink.js';
import type { EnforcementOptions, RelayLimits } from '../config.js';
import type { RelayMetrics } from '../metrics.js';
import type { PolicyStore } from '../policy/store.js';
import type { Registry } from '../registry.js';
import type { GuardRuntime } from './guard-runtime.js';
import type { ConnectorLink } from './link.js';

/** RelayTiming holds the protocol's timers; tests shorten them, production uses the defaults. */
export interface RelayTiming {
  /** helloTimeoutMs is how long a new link may take to send HELLO (protocol: 10 s). */
  helloTimeoutMs: number;
  /** heartbeatIntervalMs is the ping period for links and agent sessions (protocol: 10 s). */
  heartbeatIntervalMs: number;
  /** idleTicks is how many silent heartbeat periods end a connection (protocol: 3 → 30 s). */
  idleTicks: number;
}

/** DEFAULT_TIMING is the timing docs/protocol.md prescribes. */
export const DEFAULT_TIMING: Readonly<RelayTiming> = Object.freeze({ helloTimeoutMs: 10_000, heartbeatIntervalMs: 10_000, idleTicks: 3 });

/** RelayContext is what links and sessions share: configuration, policy, registry, sinks. */
export interface RelayContext {
  readonly limits: RelayLimits;
  readonly enforcement: EnforcementOptions;
  readonly policy: PolicyStore;
  readonly registry: Registry<ConnectorLink>;
  readonly audit: AuditSink;
  /** guards is the relay-wide state of policy enforcement (rate limits, pins, inventory, JWT signer). */
  readonly guards: GuardRuntime;
  readonly metrics: RelayMetrics;
  readonly logger: Logger;
  readonly relayId: SpiffeId;
  readonly timing: RelayTiming;
  /** sessionEnded is called once per session after it is freed (drain bookkeeping). */
  sessionEnded(): void;
  /** linkEnded is called once per link after it closed. */
  linkEnded(link: ConnectorLink): void;
}
