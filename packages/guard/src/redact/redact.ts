import { GuardError } from '../errors.js';
import type { Span } from './detector.js';
import { getProfile, type RedactionProfile } from './profiles.js';

/** RedactionCounts maps a secret kind to the number of matches replaced; kinds not found are absent. */
export type RedactionCounts = Record<string, number>;

/** TextRedaction is the result of {@link redactText}. */
export interface TextRedaction {
  /** text is the input with each match replaced by `[REDACTED:<kind>]`; the input itself when `total` is 0. */
  readonly text: string;
  readonly counts: Readonly<RedactionCounts>;
  /** total is the number of matches replaced. */
  readonly total: number;
}

/** JsonRedaction is the result of {@link redactJsonValue}. */
export interface JsonRedaction<T = unknown> {
  /** value is the redacted copy — the very same object as the input when `total` is 0. */
  readonly value: T;
  readonly counts: Readonly<RedactionCounts>;
  readonly total: number;
}

/** redactionMarker returns the text that replaces a match of `kind`. */
export function redactionMarker(kind: string): string {
  return `[REDACTED:${kind}]`;
}

const NO_COUNTS: Readonly<RedactionCounts> = Object.freeze({});

function resolve(profile: RedactionProfile | string): RedactionProfile {
  return typeof profile === 'string' ? getProfile(profile) : profile;
}

function byStartThenLongest(a: Span, b: Span): number {
  return a.start - b.start || b.end - a.end;
}

/**
 * Replace the spans; where two overlap, the one starting first (then the longer) wins, so a key
 * inside a PEM block is counted once, as part of the block.
 */
function apply(text: string, spans: Span[], counts: RedactionCounts): { text: string; total: number } {
  spans.sort(byStartThenLongest);
  let out = '';
  let at = 0;
  let total = 0;
  for (const s of spans) {
    if (s.start < at) continue;
    out += text.slice(at, s.start) + redactionMarker(s.kind);
    at = s.end;
    counts[s.kind] = (counts[s.kind] ?? 0) + 1;
    total++;
  }
  return { text: out + text.slice(at), total };
}

/**
 * redactText replaces every secret the profile's detectors find in `text` by a marker naming its
 * kind (`[REDACTED:aws_access_key]`) and counts them. `profile` is a {@link RedactionProfile} or
 * the name of a built-in one (`secrets`). Linear in the length of the text.
 *
 * @example
 * const r = redactText('key AKIAIOSFODNN7EXAMPLE', 'secrets');
 * // r.text === 'key [REDACTED:aws_access_key]', r.counts.aws_access_key === 1
 */
export function redactText(text: string, profile: RedactionProfile | string): TextRedaction {
  if (typeof text !== 'string') throw new TypeError('redact: redactText needs a string');
  const p = resolve(profile);
  const spans = p.find(text);
  if (spans === undefined) return { text, counts: NO_COUNTS, total: 0 };
  const counts: RedactionCounts = {};
  const r = apply(text, spans, counts);
  return { text: r.text, counts, total: r.total };
}

/** RedactJsonOptions tune {@link redactJsonValue}. */
export interface RedactJsonOptions {
  /** maxDepth bounds the nesting walked; deeper values raise `GUARD_ERR_TOO_DEEP` (default 256). */
  maxDepth?: number;
}

interface Walk {
  readonly profile: RedactionProfile;
  readonly maxDepth: number;
  counts: RedactionCounts | undefined;
  total: number;
}

function walk(value: unknown, w: Walk, depth: number): unknown {
  if (typeof value === 'string') {
    const spans = w.profile.find(value);
    if (spans === undefined) return value;
    w.counts ??= {};
    const r = apply(value, spans, w.counts);
    w.total += r.total;
    return r.text;
  }
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= w.maxDepth) throw new GuardError('GUARD_ERR_TOO_DEEP', `redact: JSON value nested deeper than ${w.maxDepth} levels`);
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const r = walk(v, w, depth + 1);
      if (r !== v) {
        copy ??= value.slice();
        copy[i] = r;
      }
    }
    return copy ?? value;
  }
  const obj = value as Record<string, unknown>;
  let changed: Map<string, unknown> | undefined;
  for (const k of Object.keys(obj)) {
    const v = obj[k];
    const r = walk(v, w, depth + 1);
    if (r !== v) (changed ??= new Map()).set(k, r);
  }
  if (changed === undefined) return value;
  // Object.fromEntries defines own properties, so a key named "__proto__" stays a plain key.
  const c = changed;
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, c.has(k) ? c.get(k) : v]));
}

/**
 * redactJsonValue walks a parsed JSON value and redacts every string in it (object keys are left
 * alone). When nothing matched it returns the very same value (`result.value === value`), so the
 * caller can forward the original bytes; otherwise a copy that shares every untouched subtree.
 * Throws `GUARD_ERR_TOO_DEEP` past `maxDepth` — refuse such a message rather than forward it.
 *
 * @example
 * const r = redactJsonValue(toolResult, secrets);
 * const bytes = r.total === 0 ? originalBytes : JSON.stringify(r.value);
 */
export function redactJsonValue<T>(value: T, profile: RedactionProfile | string, options: RedactJsonOptions = {}): JsonRedaction<T> {
  const w: Walk = { profile: resolve(profile), maxDepth: options.maxDepth ?? 256, counts: undefined, total: 0 };
  const out = walk(value, w, 0) as T;
  return { value: out, counts: w.counts ?? NO_COUNTS, total: w.total };
}
