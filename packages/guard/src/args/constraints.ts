import { GuardError } from '../errors.js';
import { canonicalJson } from '../internal/canonical-json.js';
import { compilePathGlob, type PathGlob } from './path-glob.js';
import { pathSegments } from './posix-path.js';
import { ArgRegex, ArgRegexError } from './regex.js';

/**
 * ArgConstraintSpec constrains one named argument of a tool call, as written in a policy
 * (`rules[].args.<tool>.<arg>`). Each key is optional; a constraint applies when the argument is
 * present, and `required: true` demands that it is.
 */
export interface ArgConstraintSpec {
  /** glob: the value is a path that, normalised, matches one of these (see {@link compilePathGlob}). */
  glob?: string | string[];
  /** regex: the string value matches this pattern (a search — anchor it with `^…$`). */
  regex?: string;
  /** enum: the value equals one of these, as JSON (type-exact, key order ignored). */
  enum?: unknown[];
  /** max: upper bound — characters (code points) of a string, or the value of a number. */
  max?: number;
  /** required: the argument must be present. */
  required?: boolean;
}

/** ToolArgsSpec maps argument names to their constraints, for one tool. */
export type ToolArgsSpec = Record<string, ArgConstraintSpec>;

/**
 * ArgConstraintName names the constraint that refused a call (`constraint`, to keep it apart from
 * the policy rule that holds it). `arguments` means the arguments were not an object.
 */
export type ArgConstraintName = 'arguments' | 'required' | 'max' | 'enum' | 'regex' | 'glob';

/** ArgCheck is the outcome of {@link ArgConstraints.check}: allowed, or the first failing constraint. */
export type ArgCheck =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /** argument is the argument's name (`''` for `constraint: 'arguments'`). */
      readonly argument: string;
      readonly constraint: ArgConstraintName;
      /** reason is one line for logs and audit records, naming the argument and the constraint. */
      readonly reason: string;
    };

/** ArgConstraintOptions tune {@link compileArgConstraints}. */
export interface ArgConstraintOptions {
  /** regexInputMax is the longest string a `regex` constraint examines; longer values are refused (default 4096). */
  regexInputMax?: number;
  /** where names the spec in error messages (`rules[2].args.read_file`). */
  where?: string;
}

const SPEC_KEYS: ReadonlySet<string> = new Set(['glob', 'regex', 'enum', 'max', 'required']);
const MAX_PATTERN_LENGTH = 1024;
const MAX_ENUM = 1000;
const ALLOWED: ArgCheck = Object.freeze({ ok: true });

interface CompiledArg {
  readonly name: string;
  readonly required: boolean;
  readonly max: number | undefined;
  readonly enumPrimitives: ReadonlySet<unknown> | undefined;
  readonly enumJson: ReadonlySet<string> | undefined;
  readonly enumText: string;
  readonly regex: ArgRegex | undefined;
  readonly globs: readonly PathGlob[] | undefined;
}

function refuse(argument: string, constraint: ArgConstraintName, reason: string): ArgCheck {
  return { ok: false, argument, constraint, reason: `argument "${argument}" ${reason} (${constraint})` };
}

function codePointLength(s: string, atLeast: number): number {
  // UTF-16 length bounds the code-point count from above; count only when it could matter.
  if (s.length <= atLeast) return s.length;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

function isPrimitive(v: unknown): boolean {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/**
 * ArgConstraints is the compiled form of a {@link ToolArgsSpec}: globs, patterns and enum sets
 * built once, so {@link check} does no parsing and no allocation when a call is allowed.
 */
export class ArgConstraints {
  private readonly args: readonly CompiledArg[];
  private readonly regexInputMax: number;

  /** @internal use {@link compileArgConstraints}. */
  constructor(args: CompiledArg[], regexInputMax: number) {
    this.args = Object.freeze(args);
    this.regexInputMax = regexInputMax;
    Object.freeze(this);
  }

  /** names lists the constrained arguments, in the order they are checked. */
  get names(): string[] {
    return this.args.map((a) => a.name);
  }

  /**
   * check tests the `arguments` of a `tools/call` against every constraint, in the order the spec
   * lists the arguments (and per argument: required, max, enum, regex, glob), and returns the
   * first failure. `arguments` absent counts as `{}`; anything else but a plain object is refused.
   * Only own properties count — `constructor` or `__proto__` are never read from a prototype.
   */
  check(args: unknown): ArgCheck {
    if (args === undefined || args === null) args = {};
    if (typeof args !== 'object' || Array.isArray(args)) {
      return { ok: false, argument: '', constraint: 'arguments', reason: 'arguments must be an object (arguments)' };
    }
    const obj = args as Record<string, unknown>;
    for (const a of this.args) {
      if (!Object.hasOwn(obj, a.name)) {
        if (a.required) return refuse(a.name, 'required', 'is required but absent');
        continue;
      }
      const v = obj[a.name];
      const r = this.checkOne(a, v);
      if (r !== ALLOWED) return r;
    }
    return ALLOWED;
  }

  private checkOne(a: CompiledArg, v: unknown): ArgCheck {
    if (a.max !== undefined) {
      if (typeof v === 'string') {
        if (codePointLength(v, a.max) > a.max) return refuse(a.name, 'max', `is longer than ${a.max} characters`);
      } else if (typeof v === 'number') {
        if (!(v <= a.max)) return refuse(a.name, 'max', `is greater than ${a.max}`);
      } else return refuse(a.name, 'max', 'must be a string or a number');
    }
    if (a.enumPrimitives !== undefined) {
      let found: boolean;
      if (isPrimitive(v)) found = a.enumPrimitives.has(v); // SameValueZero: 1 ≠ '1', 0 = -0 as in JSON
      else {
        try {
          found = a.enumJson !== undefined && a.enumJson.has(canonicalJson(v));
        } catch {
          found = false;
        }
      }
      if (!found) return refuse(a.name, 'enum', `is not one of ${a.enumText}`);
    }
    if (a.regex !== undefined) {
      if (typeof v !== 'string') return refuse(a.name, 'regex', 'must be a string');
      if (v.length > this.regexInputMax) return refuse(a.name, 'regex', `is longer than the ${this.regexInputMax} characters a pattern examines`);
      if (!a.regex.test(v)) return refuse(a.name, 'regex', `does not match /${a.regex.source}/`);
    }
    if (a.globs !== undefined) {
      if (typeof v !== 'string') return refuse(a.name, 'glob', 'must be a string path');
      const segs = pathSegments(v);
      if (typeof segs === 'string') return refuse(a.name, 'glob', segs);
      let hit = false;
      for (const g of a.globs) {
        if (g.matchesSegments(segs)) {
          hit = true;
          break;
        }
      }
      if (!hit) return refuse(a.name, 'glob', `is outside ${a.globs.map((g) => g.pattern).join(', ')}`);
    }
    return ALLOWED;
  }
}

/**
 * compileArgConstraints validates and compiles the argument constraints of one tool. Throws
 * `GUARD_ERR_ARG_SPEC` with `path` set (`path.glob[1]`) for unknown keys, wrong types, globs that
 * are not absolute or use `..`, regexes that do not compile or need backtracking (backreferences,
 * lookaround), an empty or oversized `enum`, a negative `max`.
 *
 * @example
 * const c = compileArgConstraints({ path: { glob: '/data/**', required: true }, mode: { enum: ['r'] } });
 * c.check({ path: '/data/../etc/passwd' }); // { ok: false, argument: 'path', constraint: 'glob', … }
 */
export function compileArgConstraints(spec: ToolArgsSpec, options: ArgConstraintOptions = {}): ArgConstraints {
  const where = options.where ? `${options.where}.` : '';
  const bad = (path: string, rule: string): never => {
    throw new GuardError('GUARD_ERR_ARG_SPEC', `args: ${where}${path}: ${rule}`, { path: `${where}${path}` });
  };
  const regexInputMax = options.regexInputMax ?? 4096;
  if (!Number.isInteger(regexInputMax) || regexInputMax < 1) throw new TypeError('args: regexInputMax must be a positive integer');
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) bad('(args)', 'must be a map of argument names to constraints');
  const args: CompiledArg[] = [];
  for (const [name, c] of Object.entries(spec)) {
    if (name.length === 0 || name.length > 128) bad(name, 'argument names are 1–128 characters');
    if (typeof c !== 'object' || c === null || Array.isArray(c)) bad(name, 'must be a map of constraints (glob, regex, enum, max, required)');
    for (const k of Object.keys(c)) if (!SPEC_KEYS.has(k)) bad(`${name}.${k}`, 'unknown constraint (use glob, regex, enum, max, required)');
    if (Object.keys(c).length === 0) bad(name, 'names no constraint');

    let required = false;
    if (c.required !== undefined) {
      if (typeof c.required !== 'boolean') bad(`${name}.required`, 'must be true or false');
      required = c.required;
    }

    let max: number | undefined;
    if (c.max !== undefined) {
      if (typeof c.max !== 'number' || !Number.isFinite(c.max)) bad(`${name}.max`, 'must be a finite number');
      max = c.max;
    }

    let enumPrimitives: Set<unknown> | undefined;
    let enumJson: Set<string> | undefined;
    let enumText = '';
    if (c.enum !== undefined) {
      if (!Array.isArray(c.enum) || c.enum.length === 0) bad(`${name}.enum`, 'must be a non-empty list');
      if (c.enum.length > MAX_ENUM) bad(`${name}.enum`, `at most ${MAX_ENUM} values`);
      enumPrimitives = new Set();
      c.enum.forEach((v: unknown, i: number) => {
        if (isPrimitive(v)) {
          if (typeof v === 'number' && !Number.isFinite(v)) bad(`${name}.enum[${i}]`, 'must be a JSON value');
          (enumPrimitives as Set<unknown>).add(v);
        } else {
          let text: string;
          try {
            text = canonicalJson(v);
          } catch {
            return bad(`${name}.enum[${i}]`, 'must be a JSON value');
          }
          (enumJson ??= new Set()).add(text);
        }
      });
      const shown = c.enum.slice(0, 10).map((v: unknown) => JSON.stringify(v));
      enumText = `[${shown.join(', ')}${c.enum.length > 10 ? ', …' : ''}]`;
    }

    let regex: ArgRegex | undefined;
    if (c.regex !== undefined) {
      if (typeof c.regex !== 'string') bad(`${name}.regex`, 'must be a string');
      if (c.regex.length > MAX_PATTERN_LENGTH) bad(`${name}.regex`, `at most ${MAX_PATTERN_LENGTH} characters`);
      try {
        regex = ArgRegex.compile(c.regex);
      } catch (err) {
        if (err instanceof ArgRegexError) bad(`${name}.regex`, err.message);
        throw err;
      }
    }

    let globs: PathGlob[] | undefined;
    if (c.glob !== undefined) {
      const list = typeof c.glob === 'string' ? [c.glob] : c.glob;
      if (!Array.isArray(list) || list.length === 0) bad(`${name}.glob`, 'must be a path glob or a non-empty list of them');
      globs = list.map((g: unknown, i: number) => {
        const at = typeof c.glob === 'string' ? `${name}.glob` : `${name}.glob[${i}]`;
        if (typeof g !== 'string') return bad(at, 'must be a string');
        try {
          return compilePathGlob(g);
        } catch (err) {
          return bad(at, (err as Error).message);
        }
      });
    }

    args.push(Object.freeze({ name, required, max, enumPrimitives, enumJson, enumText, regex, globs }));
  }
  return new ArgConstraints(args, regexInputMax);
}
