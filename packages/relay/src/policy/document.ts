/**
 * The policy file's shape (`policy.yaml`), as written by operators. {@link compilePolicy} checks a
 * document against these types at run time (unknown keys are errors) and compiles it into an
 * immutable {@link PolicySnapshot}.
 */

/** ServerRequestKind names the server→agent requests the policy governs. */
export type ServerRequestKind = 'sampling' | 'elicitation' | 'roots';

/** SERVER_REQUEST_KINDS lists every {@link ServerRequestKind}. */
export const SERVER_REQUEST_KINDS: readonly ServerRequestKind[] = Object.freeze(['sampling', 'elicitation', 'roots']);

/** PolicyServerDocument declares one MCP server: which connector identities may serve it. */
export interface PolicyServerDocument {
  /** connectors lists the SPIFFE IDs (exact) allowed to register this server. */
  connectors: string[];
}

/** PolicyRuleDocument is one rule: who (agents), where (servers), what (tools, server requests). */
export interface PolicyRuleDocument {
  /** id names the rule in decisions and audit records; unique in the file. */
  id: string;
  /** agents lists SPIFFE IDs or patterns (`spiffe://td/agent/*`, `spiffe://td/agent/**`, `spiffe://td`). */
  agents: string[];
  /** servers lists server names (or globs such as `*`). */
  servers: string[];
  /** tools holds globs over tool names; a deny in any matching rule beats every allow. */
  tools?: { allow?: string[]; deny?: string[] };
  /** serverRequests lets servers send these requests to the agent; unset means no opinion (deny). */
  serverRequests?: Partial<Record<ServerRequestKind, boolean>>;
}

/** PolicyDocument is the whole policy file. */
export interface PolicyDocument {
  /** trustDomain is the trust domain every ID and pattern in the file belongs to. */
  trustDomain: string;
  servers: Record<string, PolicyServerDocument>;
  rules?: PolicyRuleDocument[];
}

/** Decision is the outcome of a policy question: allowed or not, which rule decided, and why. */
export interface Decision {
  readonly allow: boolean;
  /** ruleId is the rule that decided; absent when nothing matched (default deny). */
  readonly ruleId?: string;
  /** reason is a one-line explanation for logs and audit records (never shown to agents). */
  readonly reason: string;
}
