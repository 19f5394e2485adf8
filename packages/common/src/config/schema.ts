import { z } from 'zod';
import { SchemaViolation, kindOf, type PathSegment } from './violation.js';

/**
 * The config-file schema vocabulary. Each builder is a zod schema whose error messages are the
 * rules an operator reads (`must be a string, not a list`, `is required`, `unknown key (allowed
 * here: …; did you mean "command"?)`); {@link validate} turns the first issue into a
 * {@link SchemaViolation} at its key path, so a loader can point at the line.
 */

/** TypoHintLimit is the largest edit distance at which an unknown key is taken for a typo. */
const TYPO_HINT_LIMIT = 2;

type Message = string | ((input: unknown) => string);

function say(m: Message, input: unknown): string {
  return typeof m === 'function' ? m(input) : m;
}

// An absent key shows up as an invalid_type issue whose input is undefined: that is "is required".
function typeError(expected: Message, required: string) {
  return (iss: { code?: string; input?: unknown }) => {
    if (iss.code !== 'invalid_type') return undefined;
    return iss.input === undefined ? required : say(expected, iss.input);
  };
}

/** unknownKeyRule is the message for an unknown key: what is allowed there and, for a near miss, the key meant. */
export function unknownKeyRule(key: string, allowed: readonly string[]): string {
  const hint = closest(key, allowed);
  return `unknown key (allowed here: ${allowed.join(', ')}${hint === undefined ? '' : `; did you mean "${hint}"?`})`;
}

function closest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = TYPO_HINT_LIMIT + 1;
  for (const candidate of allowed) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase(), TYPO_HINT_LIMIT);
    if (d < bestDistance && d < candidate.length) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

// Levenshtein distance with adjacent transpositions (optimal string alignment), capped: anything
// beyond `limit` is reported as limit + 1. Keys are short, so the quadratic table is tiny.
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) rows.push([i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) (rows[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] as number[];
    const prev = rows[i - 1] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      row[j] = d;
    }
  }
  return Math.min((rows[a.length] as number[])[b.length] as number, limit + 1);
}

/** ObjectOptions tune {@link object}. */
export interface ObjectOptions {
  /** what replaces `a mapping` in `must be a mapping, not a list`. */
  expected?: string;
  /** required replaces `is required` when the whole mapping is absent. */
  required?: string;
}

/** object is a mapping with exactly these keys (unknown keys are errors; a near miss gets a hint). */
export function object<S extends z.core.$ZodLooseShape>(shape: S, options: ObjectOptions = {}) {
  const allowed = Object.keys(shape);
  const expected = options.expected ?? 'a mapping';
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') return unknownKeyRule(iss.keys[0] as string, allowed);
      return typeError((v) => `must be ${expected}, not ${kindOf(v)}`, options.required ?? 'is required')(iss);
    },
  });
}

/** StringOptions tune {@link string}. */
export interface StringOptions {
  /** allowEmpty accepts `''` (refused by default: `must not be empty`). */
  allowEmpty?: boolean;
  /** what names the expected value in the messages: `is required: a SPIFFE ID`, `must be a SPIFFE ID`. */
  what?: string;
}

/** string is a string, non-empty unless `allowEmpty`. */
export function string(options: StringOptions = {}) {
  const what = options.what;
  const s = z.string({
    error: typeError((v) => (what === undefined ? `must be a string, not ${kindOf(v)}` : `must be ${what}`), what === undefined ? 'is required' : `is required: ${what}`),
  });
  return options.allowEmpty ? s : s.min(1, what === undefined ? 'must not be empty' : `must be ${what}`);
}

/** stringList is a list of non-empty strings, `minItems` long at least. */
export function stringList(minItems = 0, item: z.ZodType<string> = string()) {
  return z
    .array(item, { error: typeError((v) => `must be a list of strings, not ${kindOf(v)}`, 'is required') })
    .min(minItems, `must list at least ${minItems} item${minItems === 1 ? '' : 's'}`);
}

/** boolean is `true` or `false`. */
export function boolean() {
  return z.boolean({ error: typeError((v) => `must be true or false, not ${kindOf(v)}`, 'is required') });
}

/** integer is an integer from `min` to `max` (both included). */
export function integer(min: number, max: number) {
  const range = `must be between ${min} and ${max}`;
  return z
    .number({ error: typeError((v) => `must be an integer, not ${kindOf(v)}`, 'is required') })
    .int({ error: 'must be an integer, not a number' })
    .min(min, range)
    .max(max, range);
}

/** oneOf is one of a few strings; `rule` says which (`must be strict, batched or off`). */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T, rule: Message) {
  return z.enum(values, {
    error: (iss) => {
      if (iss.input === undefined) return 'is required';
      if (typeof iss.input !== 'string') return `must be a string, not ${kindOf(iss.input)}`;
      return say(rule, iss.input);
    },
  });
}

/** record is a mapping of any keys to values of one schema; `required` is the message when it is absent. */
export function record<V extends z.ZodType>(value: V, expected = 'a mapping', required = 'is required') {
  return z.record(z.string(), value, { error: typeError((v) => `must be ${expected}, not ${kindOf(v)}`, required) });
}

/**
 * validate checks `value` against `schema` and returns the parsed value, or throws a
 * {@link SchemaViolation} for the first broken rule; `base` prefixes its path (for a section
 * validated on its own). An unknown key is reported before anything else it may have caused (a
 * misspelt `comand` is the error, not the missing `command`).
 */
export function validate<S extends z.ZodType>(schema: S, value: unknown, base: readonly PathSegment[] = []): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw violationOf(r.error.issues, base);
}

/** violationOf turns zod issues into the one {@link SchemaViolation} an operator should fix first. */
export function violationOf(issues: readonly z.core.$ZodIssue[], base: readonly PathSegment[] = []): SchemaViolation {
  const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
  if (issue === undefined) return new SchemaViolation(base, 'is not valid');
  const path: PathSegment[] = [...base, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
  if (issue.code === 'unrecognized_keys') path.push(issue.keys[0] as string);
  return new SchemaViolation(path, issue.message);
}

/** check raises a {@link SchemaViolation} at `path` unless `ok`: for the rules a schema cannot say. */
export function check(ok: boolean, path: readonly PathSegment[], rule: string): asserts ok {
  if (!ok) throw new SchemaViolation(path, rule);
}
