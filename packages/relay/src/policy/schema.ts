import { boolean, object, oneOf, record, string, stringList, z } from '@switchboard/common/config';
import { PINNING_MODES } from './document.js';

/**
 * The shape of policy.yaml in zod: keys, types and what is required. {@link compilePolicy} checks a
 * document against it first (the first broken rule is the error, at its line), then compiles the
 * meaning: SPIFFE IDs, declared servers and zones, unique rule ids, argument constraints, rates and
 * redaction profiles, which the schema leaves to the compiler (and to `@switchboard/guard`).
 */

const accessList = object({ allow: stringList().optional(), deny: stringList().optional() });

const zone = object({ agents: stringList(1), description: string({ allowEmpty: true }).optional() });

const server = object({
  connectors: stringList(1),
  zone: string().optional(),
  labels: record(z.unknown(), 'a mapping of label names to strings').optional(),
  pinning: object({ mode: oneOf(PINNING_MODES as ['tofu', 'strict', 'off'], 'must be tofu, strict or off') }).optional(),
  identityToBackend: boolean().optional(),
});

const rule = object({
  id: string(),
  agents: stringList(1),
  servers: stringList(1),
  tools: accessList.optional(),
  resources: accessList.optional(),
  prompts: accessList.optional(),
  methods: accessList.optional(),
  args: record(record(z.unknown(), 'a mapping of argument names to constraints'), 'a mapping of tool names to argument constraints').optional(),
  rate: record(z.unknown(), 'a mapping with calls, per, concurrent').optional(),
  // A list of profiles (for results) or { results, arguments }: checked by the compiler.
  redact: z.unknown().optional(),
  serverRequests: object({ sampling: boolean().optional(), elicitation: boolean().optional(), roots: boolean().optional() }).optional(),
});

/** redactObjectSchema is a rule's `redact` written as `{ results, arguments }`. */
export const redactObjectSchema = object({ results: stringList().optional(), arguments: stringList().optional() });

/** policySchema is policy.yaml (docs/policy.md). */
export const policySchema = object({
  trustDomain: string(),
  zones: record(zone, 'a mapping of zone names to { agents }').optional(),
  servers: record(server),
  rules: z.array(rule, { error: (iss) => (iss.code === 'invalid_type' ? 'must be a list of rules' : undefined) }).optional(),
  revoked: object({ ids: stringList(1).optional(), serials: stringList().optional() }).optional(),
});

/** PolicyShape is a policy document that passed {@link policySchema}. */
export type PolicyShape = z.output<typeof policySchema>;
/** RuleShape is one rule of it. */
export type RuleShape = z.output<typeof rule>;
/** ServerShape is one server of it. */
export type ServerShape = z.output<typeof server>;
