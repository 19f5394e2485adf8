/**
 * Globs over names (tools, servers): `*` stands for any run of characters, including none; every
 * other character matches itself, byte for byte (case-sensitive, no Unicode folding).
 */

/** NameGlob matches names against one pattern; built once per policy load. */
export interface NameGlob {
  readonly pattern: string;
  matches(name: string): boolean;
}

/**
 * compileGlob builds the matcher for `pattern`: exact compare when it has no `*`. Matching is
 * linear in the name (no regex, so a long name cannot make it backtrack): the first literal
 * part must be a prefix, the last a suffix, and the middle parts are found left to right.
 */
export function compileGlob(pattern: string): NameGlob {
  if (!pattern.includes('*')) return { pattern, matches: (name) => name === pattern };
  const parts = pattern.split('*');
  const pre = parts[0] as string;
  const suf = parts[parts.length - 1] as string;
  const mid = parts.slice(1, -1).filter((p) => p.length > 0);
  let min = pre.length + suf.length;
  for (const m of mid) min += m.length;
  return {
    pattern,
    matches: (name) => {
      if (name.length < min || !name.startsWith(pre) || !name.endsWith(suf)) return false;
      let at = pre.length;
      const stop = name.length - suf.length;
      for (const m of mid) {
        const i = name.indexOf(m, at);
        if (i < 0 || i + m.length > stop) return false;
        at = i + m.length;
      }
      return true;
    },
  };
}

/** GlobSet matches a name against several patterns and says which one matched first. */
export class GlobSet {
  private readonly globs: readonly NameGlob[];

  constructor(patterns: readonly string[]) {
    this.globs = patterns.map(compileGlob);
  }

  /** size is the number of patterns. */
  get size(): number {
    return this.globs.length;
  }

  /** patterns lists the patterns, in order. */
  get patterns(): string[] {
    return this.globs.map((g) => g.pattern);
  }

  /** match returns the first pattern that matches `name`, or `undefined`. */
  match(name: string): string | undefined {
    for (const g of this.globs) if (g.matches(name)) return g.pattern;
    return undefined;
  }
}
