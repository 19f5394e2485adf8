import type { IdMatcher, SpiffeId } from '@switchboard/pki';
import type { CompiledRule } from './compile-rule.js';

/**
 * RuleIndex finds the rules that apply to one agent on one server without looking at unrelated
 * rules. Rules are bucketed per declared server (server globs are expanded at load, since every
 * server is declared), then per agent pattern: an exact SPIFFE ID goes under that ID; a pattern
 * goes under its literal prefix — the path segments before the first wildcard
 * (`spiffe://td/agent/support/*` → `spiffe://td/agent/support`, `spiffe://td` → `spiffe://td`).
 * A lookup reads the bucket of the exact ID and those of the ID's path prefixes (one per path
 * segment), tests only those patterns, and returns the matching rules in file order. Its cost
 * depends on the number of rules that could apply, not on the size of the policy.
 */
export class RuleIndex {
  private readonly byServer = new Map<string, ServerBucket>();

  constructor(rules: readonly CompiledRule[], servers: Iterable<string>) {
    const all = [...servers];
    for (const server of all) this.byServer.set(server, { exact: new Map(), prefix: new Map() });
    // Rules in file order, so every bucket list is in file order too.
    for (const rule of rules) {
      const targets = new Set<string>();
      for (const p of rule.servers.patterns) {
        if (!p.includes('*')) {
          if (this.byServer.has(p)) targets.add(p);
          continue;
        }
        for (const s of all) if (rule.servers.match(s) !== undefined) targets.add(s);
      }
      for (const server of targets) {
        const bucket = this.byServer.get(server) as ServerBucket;
        for (const m of rule.agents) {
          const map = m.kind === 'exact' ? bucket.exact : bucket.prefix;
          const key = m.kind === 'exact' ? m.pattern : literalPrefix(m);
          const list = map.get(key);
          if (list === undefined) map.set(key, [{ rule, matcher: m }]);
          else list.push({ rule, matcher: m });
        }
      }
    }
  }

  /** rulesFor returns the rules whose agents match `id` and whose servers match `server`, in file order. */
  rulesFor(id: SpiffeId, server: string): CompiledRule[] {
    const bucket = this.byServer.get(server);
    if (bucket === undefined) return [];
    const s = id.toString();
    const out: CompiledRule[] = [];
    const exact = bucket.exact.get(s);
    if (exact !== undefined) for (const e of exact) out.push(e.rule);
    if (bucket.prefix.size > 0) {
      // Prefixes at segment boundaries: spiffe://td, spiffe://td/a, spiffe://td/a/b, …
      let at = s.indexOf('/', 9);
      if (at < 0) at = s.length;
      for (;;) {
        const list = bucket.prefix.get(at === s.length ? s : s.slice(0, at));
        if (list !== undefined) for (const e of list) if (e.matcher.matches(id)) out.push(e.rule);
        if (at >= s.length) break;
        at = s.indexOf('/', at + 1);
        if (at < 0) at = s.length;
      }
    }
    if (out.length < 2) return out;
    out.sort(byIndex);
    // A rule listed under several of the agent's patterns appears once.
    let w = 1;
    for (let r = 1; r < out.length; r++) if (out[r] !== out[w - 1]) out[w++] = out[r] as CompiledRule;
    out.length = w;
    return out;
  }
}

interface Entry {
  readonly rule: CompiledRule;
  readonly matcher: IdMatcher;
}

interface ServerBucket {
  readonly exact: Map<string, Entry[]>;
  readonly prefix: Map<string, Entry[]>;
}

function byIndex(a: CompiledRule, b: CompiledRule): number {
  return a.index - b.index;
}

/** literalPrefix is the ID text before a pattern's first wildcard segment, without a trailing `/`. */
function literalPrefix(m: IdMatcher): string {
  const p = m.pattern;
  if (m.kind === 'member') return p.replace(/\/\*\*$/, '');
  if (m.kind === 'prefix') return p.replace(/\/$/, '');
  const star = p.indexOf('*');
  const cut = p.lastIndexOf('/', star);
  return p.slice(0, cut);
}
