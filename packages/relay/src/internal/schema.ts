/**
 * A small validator for the relay's YAML documents (relay.yaml, policy.yaml). Every check names the
 * key path of the offending value, so a loader can point at the line; unknown keys are errors.
 */

/** PathSegment is one step of a key path: an object key or an array index. */
export type PathSegment = string | number;

/** SchemaViolation is a broken rule at a key path; loaders turn it into their own error class. */
export class SchemaViolation extends Error {
  readonly path: readonly PathSegment[];
  readonly rule: string;

  constructor(path: readonly PathSegment[], rule: string) {
    super(`${formatPath(path)}: ${rule}`);
    this.name = 'SchemaViolation';
    this.path = [...path];
    this.rule = rule;
  }
}

/** formatPath writes a key path as `rules[2].tools.allow[0]` (`(root)` for the document). */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out === '' ? '(root)' : out;
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v}`;
}

/** isPlainObject reports whether `v` is a mapping (not null, not an array). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * checkObject requires a mapping whose keys are all in `allowed` and that has every key in
 * `required`. The first unknown key is reported at its own path.
 */
export function checkObject(
  v: unknown,
  path: readonly PathSegment[],
  allowed: readonly string[],
  required: readonly string[] = [],
): Record<string, unknown> {
  if (!isPlainObject(v)) throw new SchemaViolation(path, `must be a mapping, not ${kind(v)}`);
  for (const key of Object.keys(v)) {
    if (!allowed.includes(key)) {
      throw new SchemaViolation([...path, key], `unknown key (allowed here: ${allowed.join(', ')})`);
    }
  }
  for (const key of required) {
    if (v[key] === undefined) throw new SchemaViolation([...path, key], 'is required');
  }
  return v;
}

/** checkString requires a non-empty string (or any string when `allowEmpty`). */
export function checkString(v: unknown, path: readonly PathSegment[], allowEmpty = false): string {
  if (typeof v !== 'string') throw new SchemaViolation(path, `must be a string, not ${kind(v)}`);
  if (!allowEmpty && v.length === 0) throw new SchemaViolation(path, 'must not be empty');
  return v;
}

/** checkStringList requires a list of non-empty strings (`minItems` long at least). */
export function checkStringList(v: unknown, path: readonly PathSegment[], minItems = 0): string[] {
  if (!Array.isArray(v)) throw new SchemaViolation(path, `must be a list of strings, not ${kind(v)}`);
  if (v.length < minItems) throw new SchemaViolation(path, `must list at least ${minItems} item${minItems === 1 ? '' : 's'}`);
  return v.map((item, i) => checkString(item, [...path, i]));
}

/** checkBoolean requires `true` or `false`. */
export function checkBoolean(v: unknown, path: readonly PathSegment[]): boolean {
  if (typeof v !== 'boolean') throw new SchemaViolation(path, `must be true or false, not ${kind(v)}`);
  return v;
}

/** checkInteger requires an integer in `[min, max]`. */
export function checkInteger(v: unknown, path: readonly PathSegment[], min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new SchemaViolation(path, `must be an integer, not ${kind(v)}`);
  if (v < min || v > max) throw new SchemaViolation(path, `must be between ${min} and ${max}`);
  return v;
}
