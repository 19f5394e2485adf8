/**
 * The policy file's shape (`policy.yaml`), as written by operators. {@link compilePolicy} checks a
 * document against these types at run time (unknown keys are errors) and compiles it into an
 * immutable {@link PolicySnapshot}. docs/policy.md describes every key.
 */

/** ServerRequestKind names the server→agent requests the policy governs. */
export type ServerRequestKind = 'sampling' | 'elicitation' | 'roots';

/** SERVER_REQUEST_KINDS lists every {@link ServerRequestKind}. */
export const SERVER_REQUEST_KINDS: readonly ServerRequestKind[] = Object.freeze(['sampling', 'elicitation', 'roots']);

/** PinningMode is how a server's tool definitions are pinned: `tofu`, `strict`, or `off`. */
export type PinningMode = 'tofu' | 'strict' | 'off';

/** PINNING_MODES lists every {@link PinningMode}. */
export const PINNING_MODES: readonly PinningMode[] = Object.freeze(['tofu', 'strict', 'off']);

/** AccessListDocument is an allow list and a deny list of globs (tool names, prompt names, resource URIs). */
export interface AccessListDocument {
  allow?: string[];
  deny?: string[];
}

/** PolicyServerDocument declares one MCP server. */
export interface PolicyServerDocument {
  /** connectors lists the SPIFFE IDs (exact) allowed to register this server. */
  connectors: string[];
  /** zone names the trust zone (declared under `zones`) the server sits in. */
  zone?: string;
  /** labels are free-form key/value pairs shown in the catalog (`GET /v1/servers`). */
  labels?: Record<string, string>;
  /** pinning sets how tool definitions are pinned (default: the relay's, `tofu` when it has a pin store). */
  pinning?: { mode?: PinningMode };
  /** identityToBackend makes the relay mint a JWT-SVID for the calling agent and send it to the backend. */
  identityToBackend?: boolean;
}

/** PolicyZoneDocument declares a trust zone: the agents that may reach its servers. */
export interface PolicyZoneDocument {
  /** agents lists SPIFFE IDs or patterns allowed into the zone. */
  agents: string[];
  description?: string;
}

/** ArgConstraintDocument constrains one argument (see `@switchboard/guard` compileArgConstraints). */
export interface ArgConstraintDocument {
  glob?: string | string[];
  regex?: string;
  enum?: unknown[];
  max?: number;
  required?: boolean;
}

/** RateDocument is a rule's `rate`: `calls` per `per`, and/or `concurrent` in flight. */
export interface RateDocument {
  calls?: number;
  per?: string | number;
  concurrent?: number;
}

/** RedactDocument is a rule's `redact`: profiles for results, or `{ results, arguments }`. */
export type RedactDocument = string[] | { results?: string[]; arguments?: string[] };

/** PolicyRuleDocument is one rule: who (agents), where (servers), what and how. */
export interface PolicyRuleDocument {
  /** id names the rule in decisions and audit records; unique in the file. */
  id: string;
  /** agents lists SPIFFE IDs or patterns (`spiffe://td/agent/*`, `spiffe://td/agent/**`, `spiffe://td`). */
  agents: string[];
  /** servers lists server names (or globs such as `*`). */
  servers: string[];
  /** tools holds globs over tool names; a deny in any matching rule beats every allow. */
  tools?: AccessListDocument;
  /** resources holds URI globs (`*` within a path segment, `**` across segments). */
  resources?: AccessListDocument;
  /** prompts holds globs over prompt names. */
  prompts?: AccessListDocument;
  /**
   * methods holds globs over the JSON-RPC methods the relay does not know (a newer revision's
   * `tasks/list`, a vendor extension): they are refused unless a rule allows them here.
   */
  methods?: AccessListDocument;
  /** args constrains arguments: tool name (or glob) → argument → constraints. */
  args?: Record<string, Record<string, ArgConstraintDocument>>;
  /** rate limits the calls this rule covers, per agent. */
  rate?: RateDocument;
  /** redact names detector profiles applied to results (and, optionally, arguments). */
  redact?: RedactDocument;
  /** serverRequests lets servers send these requests to the agent; unset means no opinion (deny). */
  serverRequests?: Partial<Record<ServerRequestKind, boolean>>;
}

/** PolicyRevokedDocument lists identities refused everywhere, live sessions included. */
export interface PolicyRevokedDocument {
  /** ids lists SPIFFE IDs or patterns. */
  ids?: string[];
  /** serials lists certificate serial numbers (hex, colons allowed). */
  serials?: string[];
}

/** PolicyDocument is the whole policy file. */
export interface PolicyDocument {
  /** trustDomain is the trust domain every ID and pattern in the file belongs to. */
  trustDomain: string;
  zones?: Record<string, PolicyZoneDocument>;
  servers: Record<string, PolicyServerDocument>;
  rules?: PolicyRuleDocument[];
  revoked?: PolicyRevokedDocument;
}

/** Decision is the outcome of a policy question: allowed or not, which rule decided, and why. */
export interface Decision {
  readonly allow: boolean;
  /** ruleId is the rule that decided; absent when nothing matched (default deny) or a zone or revocation decided. */
  readonly ruleId?: string;
  /** zone is set when a trust zone decided (the agent may not reach the server's zone). */
  readonly zone?: string;
  /** revoked is set when a `revoked` entry decided. */
  readonly revoked?: boolean;
  /** revokedBy names that entry: `id:<pattern>` (revoked.ids) or `serial:<HEX>` (revoked.serials). */
  readonly revokedBy?: string;
  /** reason is a one-line explanation for logs and audit records (never shown to agents). */
  readonly reason: string;
}
