import { GuardError } from '../errors.js';
import { cardNumberDetector } from './card.js';
import type { Detector, Span } from './detector.js';
import {
  awsAccessKeyDetector,
  awsSecretKeyDetector,
  githubTokenDetector,
  privateKeyDetector,
  slackTokenDetector,
  slackWebhookDetector,
  stripeKeyDetector,
} from './detectors.js';
import { jwtDetector } from './jwt.js';

/** SecretKind names what a built-in detector finds; it appears in markers and counts. */
export type SecretKind =
  | 'private_key'
  | 'aws_access_key'
  | 'aws_secret_key'
  | 'github_token'
  | 'slack_token'
  | 'slack_webhook'
  | 'stripe_key'
  | 'jwt'
  | 'card_number';

/** BUILTIN_DETECTORS maps each {@link SecretKind} to its detector. */
export const BUILTIN_DETECTORS: Readonly<Record<SecretKind, Detector>> = Object.freeze({
  private_key: privateKeyDetector,
  aws_access_key: awsAccessKeyDetector,
  aws_secret_key: awsSecretKeyDetector,
  github_token: githubTokenDetector,
  slack_token: slackTokenDetector,
  slack_webhook: slackWebhookDetector,
  stripe_key: stripeKeyDetector,
  jwt: jwtDetector,
  card_number: cardNumberDetector,
});

/**
 * RedactionProfile is a named, immutable set of detectors. Build one with {@link createProfile},
 * take a built-in with {@link getProfile}, or merge several with {@link combineProfiles}; build
 * profiles when a policy loads and pass the object on the hot path.
 */
export interface RedactionProfile {
  readonly name: string;
  /** kinds lists the detectors' kinds, in the order they run. */
  readonly kinds: readonly string[];
  readonly detectors: readonly Detector[];
  /** minLength is the shortest text any of the detectors can match; shorter strings are skipped. */
  readonly minLength: number;
  /**
   * find runs the detectors over `text` and returns their matches (unsorted, possibly
   * overlapping), or `undefined` when there are none. Anchored detectors are screened together
   * in one pass; a detector runs only when its anchor occurs.
   */
  find(text: string): Span[] | undefined;
}

const PROFILE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/**
 * createProfile builds a {@link RedactionProfile} from detectors or built-in kind names. Throws
 * `GUARD_ERR_PROFILE` for an unknown kind, a bad name, or two detectors of the same kind.
 *
 * @example
 * const tokens = createProfile('tokens', ['github_token', 'slack_token', 'stripe_key']);
 */
export function createProfile(name: string, detectors: readonly (Detector | string)[]): RedactionProfile {
  if (!PROFILE_NAME.test(name)) {
    throw new GuardError('GUARD_ERR_PROFILE', `redact: profile name "${name}" must be 1–64 characters of a–z 0–9 _ - (starting with a letter or digit)`);
  }
  const list: Detector[] = [];
  const kinds = new Set<string>();
  for (const d of detectors) {
    const det = typeof d === 'string' ? builtinDetector(d) : d;
    if (typeof det.kind !== 'string' || !/^[a-z0-9_]{1,64}$/.test(det.kind)) {
      throw new GuardError('GUARD_ERR_PROFILE', `redact: profile "${name}": detector kind must be 1–64 characters of a–z 0–9 _`);
    }
    if (kinds.has(det.kind)) throw new GuardError('GUARD_ERR_PROFILE', `redact: profile "${name}" lists kind "${det.kind}" twice`);
    kinds.add(det.kind);
    list.push(det);
  }
  if (list.length === 0) throw new GuardError('GUARD_ERR_PROFILE', `redact: profile "${name}" has no detectors`);
  return buildProfile(name, list);
}

function escapeLiteral(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

/**
 * buildProfile compiles the one-pass screen: a single alternation of every anchor literal, each
 * occurrence marking the detectors it belongs to in a bit mask (anchored detectors beyond 31 fall
 * back to their own `screen`).
 */
function buildProfile(name: string, detectors: readonly Detector[]): RedactionProfile {
  const owners = new Map<string, number>();
  const bits: number[] = [];
  let all = 0;
  detectors.forEach((d, i) => {
    if (d.anchors === undefined || d.anchors.length === 0 || i >= 31) {
      bits.push(0);
      return;
    }
    const bit = 1 << i;
    bits.push(bit);
    all |= bit;
    for (const a of d.anchors) {
      if (typeof a !== 'string' || a.length === 0) throw new GuardError('GUARD_ERR_PROFILE', `redact: detector "${d.kind}" has an empty anchor`);
      owners.set(a, (owners.get(a) ?? 0) | bit);
    }
  });
  // The alternation reports the longest anchor at a position; every shorter anchor matching there
  // is a prefix of it, so each anchor also carries the bits of its prefixes.
  const literals = [...owners.keys()].sort((a, b) => b.length - a.length);
  const direct = new Map(owners);
  for (const l of literals) for (const [p, bit] of direct) if (p !== l && l.startsWith(p)) owners.set(l, (owners.get(l) ?? 0) | bit);
  const anchorRe = literals.length > 0 ? new RegExp(literals.map(escapeLiteral).join('|'), 'g') : undefined;
  const minLength = Math.max(1, Math.min(...detectors.map((d) => d.minLength)));
  const list = Object.freeze([...detectors]);

  function find(text: string): Span[] | undefined {
    if (text.length < minLength) return undefined;
    let mask = 0;
    if (anchorRe !== undefined) {
      anchorRe.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = anchorRe.exec(text)) !== null) {
        mask |= owners.get(m[0]) ?? 0;
        if (mask === all) break;
        // Step one character, not past the match: anchors of different detectors may overlap.
        anchorRe.lastIndex = m.index + 1;
      }
    }
    let spans: Span[] | undefined;
    for (let i = 0; i < list.length; i++) {
      const d = list[i] as Detector;
      if (text.length < d.minLength) continue;
      const bit = bits[i] as number;
      if (bit !== 0 ? (mask & bit) === 0 : !d.screen(text)) continue;
      spans ??= [];
      d.scan(text, spans);
    }
    return spans !== undefined && spans.length > 0 ? spans : undefined;
  }

  return Object.freeze({ name, kinds: Object.freeze(list.map((d) => d.kind)), detectors: list, minLength, find });
}

function builtinDetector(kind: string): Detector {
  if (!Object.hasOwn(BUILTIN_DETECTORS, kind)) {
    throw new GuardError('GUARD_ERR_PROFILE', `redact: unknown detector kind "${kind}" (known: ${Object.keys(BUILTIN_DETECTORS).join(', ')})`);
  }
  return BUILTIN_DETECTORS[kind as SecretKind];
}

const ALL_KINDS = Object.keys(BUILTIN_DETECTORS) as SecretKind[];

/**
 * BUILTIN_PROFILES are the profiles a policy can name: `secrets` (every built-in detector),
 * `credentials` (keys and tokens, not card numbers) and `cards` (card numbers only).
 */
export const BUILTIN_PROFILES: ReadonlyMap<string, RedactionProfile> = new Map([
  ['secrets', createProfile('secrets', ALL_KINDS)],
  ['credentials', createProfile('credentials', ALL_KINDS.filter((k) => k !== 'card_number'))],
  ['cards', createProfile('cards', ['card_number'])],
]);

/**
 * getProfile returns the built-in profile `name` (or one from `extra`, which wins). Throws
 * `GUARD_ERR_PROFILE` naming the known profiles when there is none.
 */
export function getProfile(name: string, extra?: ReadonlyMap<string, RedactionProfile>): RedactionProfile {
  const p = extra?.get(name) ?? BUILTIN_PROFILES.get(name);
  if (p === undefined) {
    const known = [...new Set([...(extra?.keys() ?? []), ...BUILTIN_PROFILES.keys()])].join(', ');
    throw new GuardError('GUARD_ERR_PROFILE', `redact: unknown profile "${name}" (known: ${known})`);
  }
  return p;
}

/**
 * combineProfiles merges profiles (objects or names, see {@link getProfile}) into one that runs
 * each distinct detector once — what a rule with `redact: [credentials, cards]` needs.
 */
export function combineProfiles(
  profiles: readonly (RedactionProfile | string)[],
  extra?: ReadonlyMap<string, RedactionProfile>,
): RedactionProfile {
  const resolved = profiles.map((p) => (typeof p === 'string' ? getProfile(p, extra) : p));
  if (resolved.length === 1) return resolved[0] as RedactionProfile;
  const detectors: Detector[] = [];
  const seen = new Map<string, Detector>();
  for (const p of resolved) {
    for (const d of p.detectors) {
      const prior = seen.get(d.kind);
      if (prior === d) continue;
      if (prior !== undefined) throw new GuardError('GUARD_ERR_PROFILE', `redact: two different detectors of kind "${d.kind}" in ${p.name}`);
      seen.set(d.kind, d);
      detectors.push(d);
    }
  }
  const name = resolved.map((p) => p.name).join('+');
  if (detectors.length === 0) throw new GuardError('GUARD_ERR_PROFILE', 'redact: no profiles to combine');
  return buildProfile(name, detectors);
}
