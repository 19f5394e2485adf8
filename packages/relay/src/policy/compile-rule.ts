import { PkiError, parseIdMatcher, type IdMatcher, type TrustDomain } from '@switchboard/pki';
import {
  GuardError,
  compileArgConstraints,
  compileRateRule,
  getProfile,
  type ArgConstraints,
  type RateLimitSpec,
  type RateRule,
  type ToolArgsSpec,
} from '@switchboard/guard';
import { GlobSet, compileGlob, type NameGlob } from '../internal/glob.js';
import { SchemaViolation, stringList, validate, type PathSegment } from '@switchboard/common/config';
import type { ServerRequestKind } from './document.js';
import { redactObjectSchema, type RuleShape } from './schema.js';
import { UriGlobSet } from './uri-glob.js';

const RULE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_PATTERNS = 10_000;

/** CallKind names what a call reaches: a tool, a resource or a prompt. */
export type CallKind = 'tool' | 'resource' | 'prompt';

/** ArgRule is one `args.<tool>` entry of a rule: which tools it applies to and the compiled constraints. */
export interface ArgRule {
  readonly tools: NameGlob;
  readonly constraints: ArgConstraints;
}

/** CompiledRule is a rule ready for evaluation: matchers built, globs and constraints compiled. */
export interface CompiledRule {
  readonly id: string;
  /** index is the rule's position in the file (first rule is 0). */
  readonly index: number;
  readonly agents: readonly IdMatcher[];
  readonly servers: GlobSet;
  readonly toolsAllow: GlobSet;
  readonly toolsDeny: GlobSet;
  readonly resourcesAllow: UriGlobSet;
  readonly resourcesDeny: UriGlobSet;
  readonly promptsAllow: GlobSet;
  readonly promptsDeny: GlobSet;
  /** methodsAllow and methodsDeny are globs over the request methods the relay does not know. */
  readonly methodsAllow: GlobSet;
  readonly methodsDeny: GlobSet;
  readonly args: readonly ArgRule[];
  readonly rate: RateRule | undefined;
  /** redactResults and redactArguments name redaction profiles (validated). */
  readonly redactResults: readonly string[];
  readonly redactArguments: readonly string[];
  readonly serverRequests: Readonly<Partial<Record<ServerRequestKind, boolean>>>;
  /** grants is true when the rule allows anything; deny-only rules never admit a session. */
  readonly grants: boolean;
  /** hasAllowLists is true when the rule allows tools, resources or prompts by name. */
  readonly hasAllowLists: boolean;
}

/**
 * ruleCovers reports whether `rule`'s `rate` and `redact` apply to a call: a rule with allow
 * lists covers what they allow; a rule without any covers every call on its servers.
 */
export function ruleCovers(rule: CompiledRule, kind: CallKind, name: string): boolean {
  if (!rule.hasAllowLists) return true;
  if (kind === 'tool') return rule.toolsAllow.match(name) !== undefined;
  if (kind === 'prompt') return rule.promptsAllow.match(name) !== undefined;
  return rule.resourcesAllow.match(name) !== undefined;
}

/** idRule turns an ID parse error into the rule it broke, for schema messages. */
export function idRule(err: unknown): string {
  return err instanceof PkiError ? err.message.replace(/^spiffeid: /, '') : String(err);
}

/** compileAgentPatterns validates SPIFFE ID patterns of one trust domain and builds their matchers. */
export function compileAgentPatterns(patterns: readonly string[], path: readonly PathSegment[], td: TrustDomain): IdMatcher[] {
  return patterns.map((p, i) => {
    const at = [...path, i];
    let m: IdMatcher;
    try {
      m = parseIdMatcher(p);
    } catch (err) {
      throw new SchemaViolation(at, `not a valid SPIFFE ID or pattern (${idRule(err)})`);
    }
    const tdOf = /^spiffe:\/\/([^/]+)/.exec(p)?.[1];
    if (tdOf !== td.name) throw new SchemaViolation(at, `${p} is outside trust domain ${td.name}`);
    return m;
  });
}

function accessList(t: RuleShape['tools'], path: readonly PathSegment[]): { allow: string[]; deny: string[] } {
  const allow = t?.allow ?? [];
  const deny = t?.deny ?? [];
  if (allow.length + deny.length > MAX_PATTERNS) throw new SchemaViolation(path, `at most ${MAX_PATTERNS} patterns`);
  return { allow, deny };
}

// GuardError paths look like `path.glob[1]`, `path.max`, `path` or `(args)`: turn them into segments.
function guardPath(base: readonly PathSegment[], text: string): PathSegment[] {
  if (text === '' || text === '(args)') return [...base];
  const m = /^(.*?)(?:\.(glob|regex|enum|max|required)(?:\[(\d+)\])?)?$/.exec(text);
  if (m === null) return [...base];
  const out: PathSegment[] = [...base, m[1] as string];
  if (m[2] !== undefined) out.push(m[2]);
  if (m[3] !== undefined) out.push(Number(m[3]));
  return out;
}

function guardRule(err: GuardError): string {
  // `args: path.glob: must be absolute` → `must be absolute`; `redact: unknown profile …` → `unknown profile …`
  const rest = err.message.replace(/^[a-z-]+: /, '');
  return err.path !== '' && rest.startsWith(`${err.path}: `) ? rest.slice(err.path.length + 2) : rest;
}

function compileArgs(value: RuleShape['args'], path: readonly PathSegment[]): ArgRule[] {
  const out: ArgRule[] = [];
  for (const [tool, spec] of Object.entries(value ?? {})) {
    const at = [...path, tool];
    if (tool.length === 0 || tool.length > 128) throw new SchemaViolation(at, 'tool names (or globs) are 1–128 characters');
    let constraints: ArgConstraints;
    try {
      constraints = compileArgConstraints(spec as ToolArgsSpec);
    } catch (err) {
      if (err instanceof GuardError) throw new SchemaViolation(guardPath(at, err.path), guardRule(err));
      throw err;
    }
    out.push(Object.freeze({ tools: compileGlob(tool), constraints }));
  }
  return out;
}

function compileRate(id: string, value: RuleShape['rate'], path: readonly PathSegment[]): RateRule | undefined {
  if (value === undefined) return undefined;
  try {
    return compileRateRule(id, value as RateLimitSpec);
  } catch (err) {
    if (err instanceof GuardError) {
      const key = err.path;
      throw new SchemaViolation(key === 'rate' || key === '' ? path : [...path, key], guardRule(err));
    }
    throw err;
  }
}

function profileList(names: readonly string[], path: readonly PathSegment[]): string[] {
  names.forEach((name, i) => {
    try {
      getProfile(name);
    } catch (err) {
      if (err instanceof GuardError) throw new SchemaViolation([...path, i], guardRule(err));
      throw err;
    }
  });
  return [...new Set(names)];
}

function compileRedact(value: unknown, path: readonly PathSegment[]): { results: string[]; arguments: string[] } {
  if (value === undefined) return { results: [], arguments: [] };
  if (Array.isArray(value)) return { results: profileList(validate(stringList(), value, path), path), arguments: [] };
  const r = validate(redactObjectSchema, value, path);
  return {
    results: r.results === undefined ? [] : profileList(r.results, [...path, 'results']),
    arguments: r.arguments === undefined ? [] : profileList(r.arguments, [...path, 'arguments']),
  };
}

/**
 * compileRule validates one `rules[]` entry and compiles it. `servers` are the declared server
 * names; `seen` collects rule ids (they must be unique).
 */
export function compileRule(r: RuleShape, index: number, td: TrustDomain, servers: ReadonlySet<string>, seen: Set<string>): CompiledRule {
  const path: PathSegment[] = ['rules', index];
  const id = r.id;
  if (!RULE_ID_PATTERN.test(id)) throw new SchemaViolation([...path, 'id'], 'rule ids are 1–128 characters of A–Z a–z 0–9 . _ : -');
  if (seen.has(id)) throw new SchemaViolation([...path, 'id'], `rule id "${id}" is used twice`);
  seen.add(id);

  const agents = compileAgentPatterns(r.agents, [...path, 'agents'], td);
  const serverNames = r.servers;
  serverNames.forEach((name, i) => {
    if (name.includes('*')) return;
    if (!servers.has(name)) throw new SchemaViolation([...path, 'servers', i], `server "${name}" is not declared under servers`);
  });

  const tools = accessList(r.tools, [...path, 'tools']);
  const resources = accessList(r.resources, [...path, 'resources']);
  const prompts = accessList(r.prompts, [...path, 'prompts']);
  const methods = accessList(r.methods, [...path, 'methods']);
  const args = compileArgs(r.args, [...path, 'args']);
  const rate = compileRate(id, r.rate, [...path, 'rate']);
  const redact = compileRedact(r.redact, [...path, 'redact']);

  const serverRequests: Partial<Record<ServerRequestKind, boolean>> = {};
  for (const [kind, allowed] of Object.entries(r.serverRequests ?? {}) as [ServerRequestKind, boolean | undefined][]) {
    if (allowed !== undefined) serverRequests[kind] = allowed;
  }
  const hasAllowLists = tools.allow.length + resources.allow.length + prompts.allow.length > 0;
  const grants = hasAllowLists || methods.allow.length > 0 || Object.values(serverRequests).some((v) => v === true);

  return Object.freeze({
    id,
    index,
    agents: Object.freeze(agents),
    servers: new GlobSet(serverNames),
    toolsAllow: new GlobSet(tools.allow),
    toolsDeny: new GlobSet(tools.deny),
    resourcesAllow: new UriGlobSet(resources.allow),
    resourcesDeny: new UriGlobSet(resources.deny),
    promptsAllow: new GlobSet(prompts.allow),
    promptsDeny: new GlobSet(prompts.deny),
    methodsAllow: new GlobSet(methods.allow),
    methodsDeny: new GlobSet(methods.deny),
    args: Object.freeze(args),
    rate,
    redactResults: Object.freeze(redact.results),
    redactArguments: Object.freeze(redact.arguments),
    serverRequests: Object.freeze(serverRequests),
    grants,
    hasAllowLists,
  });
}
