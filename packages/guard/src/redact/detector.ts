/**
 * The detector contract. A detector finds one kind of secret in text; a profile is a named set of
 * detectors. Detectors are plain objects so more can be written outside this package.
 */

/** Span is one match: `[start, end)` in UTF-16 code units, and the kind of secret found there. */
export interface Span {
  start: number;
  end: number;
  kind: string;
}

/**
 * Detector finds one kind of secret. `screen` is a cheap test run first (substring or character
 * checks; no regex over the whole text when it can be helped); `scan` runs only when it passes and
 * must be linear in the length of the text whatever the input — no pattern that can backtrack
 * catastrophically.
 */
export interface Detector {
  /** kind names what the detector finds; it is used in markers (`[REDACTED:<kind>]`) and counts. */
  readonly kind: string;
  /** minLength is the length of the shortest match; shorter strings are not looked at. */
  readonly minLength: number;
  /**
   * anchors, when given, are literals at least one of which every match contains. A profile then
   * screens all its detectors' anchors in one pass over the text instead of calling `screen`.
   */
  readonly anchors?: readonly string[];
  /** screen returns false when `text` cannot hold a match. */
  screen(text: string): boolean;
  /** scan appends every match in `text` to `out`. */
  scan(text: string, out: Span[]): void;
}

/** CharTest tells whether a UTF-16 code unit belongs to some class. */
export type CharTest = (code: number) => boolean;

/** isAlnum is true for `A–Z a–z 0–9`. */
export const isAlnum: CharTest = (c) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/** isWord is true for `A–Z a–z 0–9 _`. */
export const isWord: CharTest = (c) => isAlnum(c) || c === 95;

/** isBase64Url is true for `A–Z a–z 0–9 _ -`. */
export const isBase64Url: CharTest = (c) => isWord(c) || c === 45;

/** AnchoredDetectorInit describes a detector whose matches all start with one of a few literals. */
export interface AnchoredDetectorInit {
  kind: string;
  /** anchors are literals; every match starts with one of them. */
  anchors: readonly string[];
  /** pattern is matched (sticky) where an anchor is found; it must begin with that anchor. */
  pattern: RegExp;
  minLength: number;
  /** notAfter rejects an anchor preceded by such a character (a left word boundary). */
  notAfter?: CharTest;
  /** validate can reject a syntactic match (a checksum, a decoded header). */
  validate?: (match: string) => boolean;
}

/**
 * anchoredDetector builds a {@link Detector} that looks for its anchors with `indexOf` and runs
 * its sticky pattern only at those places. The pattern is given without flags; it is compiled
 * sticky here. Keep it free of nested quantifiers so each attempt is linear.
 */
export function anchoredDetector(init: AnchoredDetectorInit): Detector {
  const re = new RegExp(init.pattern.source, 'y');
  const { anchors, notAfter, validate, kind } = init;
  return Object.freeze({
    kind,
    minLength: init.minLength,
    anchors: Object.freeze([...anchors]),
    screen(text: string): boolean {
      for (const a of anchors) if (text.includes(a)) return true;
      return false;
    },
    scan(text: string, out: Span[]): void {
      for (const a of anchors) {
        let i = text.indexOf(a);
        while (i >= 0) {
          let next = i + 1;
          if (i === 0 || notAfter === undefined || !notAfter(text.charCodeAt(i - 1))) {
            re.lastIndex = i;
            const m = re.exec(text);
            if (m !== null && (validate === undefined || validate(m[0]))) {
              out.push({ start: i, end: i + m[0].length, kind });
              next = i + m[0].length;
            }
          }
          i = text.indexOf(a, next);
        }
      }
    },
  });
}
