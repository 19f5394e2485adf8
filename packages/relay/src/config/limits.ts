import { integer, object, oneOf, validate, type PathSegment } from '@switchboard/common/config';
import { withConfigErrors } from './config-errors.js';

/** RelayLimits bound what one peer can make the relay hold or wait for. */
export interface RelayLimits {
  /** maxMessageBytes is the largest agent message (one WebSocket frame); larger closes the session with 1009. */
  maxMessageBytes: number;
  /** maxDepth is the deepest JSON nesting accepted in a message; deeper is refused with -32600. */
  maxDepth: number;
  /** maxServerMessageBytes is the largest server→agent message; larger closes the session with 1009. */
  maxServerMessageBytes: number;
  /** openTimeoutMs is how long a connector may take to open a backend session (then 4504). */
  openTimeoutMs: number;
  /** drainTimeoutMs is how long a shutdown lets open sessions finish. */
  drainTimeoutMs: number;
  /** maxSessionsPerLink bounds the sessions one connector link carries. */
  maxSessionsPerLink: number;
  /** sessionWindowBytes is the per-session flow-control window announced in WELCOME. */
  sessionWindowBytes: number;
  /** handshakeTimeoutMs bounds a TLS handshake on the public listeners. */
  handshakeTimeoutMs: number;
  /** upgradeTimeoutMs bounds the time from a finished handshake to the first HTTP request. */
  upgradeTimeoutMs: number;
  /** maxConnections bounds the main listener's open connections in total. */
  maxConnections: number;
  /** maxConnectionsPerSource bounds one source address's (IPv6: /64) open connections; 0 lifts it. */
  maxConnectionsPerSource: number;
  /** maxHandshakes bounds connections in the TLS handshake; the oldest is dropped for a new one. */
  maxHandshakes: number;
  /** maxHandshakesPerSource bounds one source's connections in the TLS handshake; 0 lifts it. */
  maxHandshakesPerSource: number;
}

/** DEFAULT_LIMITS are the limits used for every key relay.yaml leaves out. */
export const DEFAULT_LIMITS: Readonly<RelayLimits> = Object.freeze({
  maxMessageBytes: 1024 * 1024,
  maxDepth: 64,
  maxServerMessageBytes: 16 * 1024 * 1024,
  openTimeoutMs: 10_000,
  drainTimeoutMs: 30_000,
  maxSessionsPerLink: 1024,
  sessionWindowBytes: 256 * 1024,
  handshakeTimeoutMs: 5_000,
  upgradeTimeoutMs: 5_000,
  maxConnections: 20_000,
  maxConnectionsPerSource: 2_048,
  maxHandshakes: 256,
  maxHandshakesPerSource: 64,
});

/** limitsSchema is relay.yaml's `limits` section: each key optional, each value in its range. */
export const limitsSchema = object({
  maxMessageBytes: integer(1024, 64 * 1024 * 1024).optional(),
  maxDepth: integer(2, 1000).optional(),
  maxServerMessageBytes: integer(1024, 256 * 1024 * 1024).optional(),
  openTimeoutMs: integer(100, 600_000).optional(),
  drainTimeoutMs: integer(0, 3_600_000).optional(),
  maxSessionsPerLink: integer(1, 65_536).optional(),
  sessionWindowBytes: integer(1024, 64 * 1024 * 1024).optional(),
  handshakeTimeoutMs: integer(100, 120_000).optional(),
  upgradeTimeoutMs: integer(100, 120_000).optional(),
  maxConnections: integer(1, 1_000_000).optional(),
  maxConnectionsPerSource: integer(0, 1_000_000).optional(),
  maxHandshakes: integer(1, 100_000).optional(),
  maxHandshakesPerSource: integer(0, 100_000).optional(),
});

/**
 * UnknownToolReply chooses how the relay answers a `tools/call` for a tool the agent may not use.
 * Both styles give a denied and a non-existent tool the same answer; they differ in how a denial
 * compares with the answer of a *server* for a tool it does not have (which the relay only
 * forwards when the policy allows that name, e.g. through a glob).
 *
 * - `jsonrpc-error` (default): the JSON-RPC error `{ code: -32602, message: 'Unknown tool: <name>' }`
 *   of the MCP specification's example; SDK clients throw an `McpError` with code -32602.
 * - `mcp-sdk`: byte for byte what the MCP TypeScript SDK's `McpServer` (1.x) sends for a tool it
 *   does not have — a *result* `{ content: [{ type: 'text', text: 'MCP error -32602: Tool <name> not found' }], isError: true }`.
 *   Choose it when the backends are SDK servers, so a denial looks exactly like their own answer.
 */
export type UnknownToolReply = 'mcp-sdk' | 'jsonrpc-error';

/** EnforcementOptions tune how refusals look on the wire, and how limits are shared between replicas. */
export interface EnforcementOptions {
  unknownToolReply: UnknownToolReply;
  /**
   * replicas is how many relay replicas serve the same agents (behind one load balancer). Rate
   * limits are kept per replica, so each enforces its share — `calls` and `concurrent` divided by
   * `replicas`, rounded down, at least 1 — and N replicas together never allow more than the
   * policy says (docs/operations.md, "Limits across replicas").
   */
  replicas: number;
}

/** DEFAULT_ENFORCEMENT is used when relay.yaml has no `enforcement` section. */
export const DEFAULT_ENFORCEMENT: Readonly<EnforcementOptions> = Object.freeze({ unknownToolReply: 'jsonrpc-error', replicas: 1 });

/** enforcementSchema is relay.yaml's `enforcement` section. */
export const enforcementSchema = object({
  unknownToolReply: oneOf(['jsonrpc-error', 'mcp-sdk'], 'must be jsonrpc-error or mcp-sdk').optional(),
  replicas: integer(1, 1000).optional(),
});

/**
 * resolveLimits fills `partial` (startRelay's `limits` option) with defaults and checks every value
 * against its range. Throws {@link RelayConfigError} naming the key path.
 */
export function resolveLimits(partial: unknown, path: readonly PathSegment[] = ['limits']): RelayLimits {
  if (partial === undefined) return { ...DEFAULT_LIMITS };
  return withDefaults(DEFAULT_LIMITS, withConfigErrors(() => validate(limitsSchema, partial, path), undefined, undefined));
}

/** resolveEnforcement fills `partial` (startRelay's `enforcement` option) with defaults and checks it. */
export function resolveEnforcement(partial: unknown, path: readonly PathSegment[] = ['enforcement']): EnforcementOptions {
  if (partial === undefined) return { ...DEFAULT_ENFORCEMENT };
  return withDefaults(DEFAULT_ENFORCEMENT, withConfigErrors(() => validate(enforcementSchema, partial, path), undefined, undefined));
}

/** withDefaults is `defaults` overlaid with the keys `partial` sets (an absent key keeps its default). */
export function withDefaults<T extends object>(defaults: Readonly<T>, partial: { [K in keyof T]?: T[K] | undefined }): T {
  const out: T = { ...defaults } as T;
  for (const key of Object.keys(partial) as (keyof T)[]) {
    const v = partial[key];
    if (v !== undefined) out[key] = v;
  }
  return out;
}

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
