/** PathSegment is one step of a key path: an object key or an array index. */
export type PathSegment = string | number;

/**
 * SchemaViolation is a broken rule at a key path of a config document. Loaders turn it into their
 * own error class (with the file and line found by {@link YamlSource.locate}).
 */
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

/** kindOf names what a YAML value is, for "must be X, not Y" messages: `a list`, `a mapping`, `null`, `a number`. */
export function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v}`;
}

/** isPlainObject reports whether `v` is a mapping (not null, not an array). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
