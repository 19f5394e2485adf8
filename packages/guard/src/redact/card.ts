import { isAlnum, type Detector, type Span } from './detector.js';

/**
 * Payment card numbers (PANs). A candidate is 14–19 digits, written together or in groups joined
 * by single spaces or single dashes (one kind of separator per number), that passes the Luhn check
 * and starts with an issuer prefix (IIN) whose scheme issues numbers of that length. All three
 * together keep ordinary numbers — timestamps, IDs, phone numbers, amounts — from matching.
 */

// Fourteen digits or more, starting with four together (every card layout does), each further
// digit optionally preceded by one space or dash. Every repetition consumes a digit, so a match is
// linear; runs longer than 19 digits are consumed whole (then rejected). The lookbehind keeps the
// engine from retrying inside a run of digits.
const DIGIT_RUN = /(?<![0-9])[0-9]{4}(?:[ -]?[0-9]){10,}/g;

const DIGIT_0 = 48;

/** luhnValid reports whether a string of ASCII digits passes the Luhn (mod 10) check. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - DIGIT_0;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

function prefix(digits: string, n: number): number {
  return Number(digits.slice(0, n));
}

/**
 * cardScheme names the card scheme whose IIN range and length `digits` fits, or `undefined`.
 * Ranges: Visa 4 (16, 19); Mastercard 51–55 and 2221–2720 (16); American Express 34, 37 (15);
 * Discover 6011, 644–649, 65, 622126–622925 (16–19); JCB 3528–3589 (16–19); Diners Club 300–305,
 * 3095, 36, 38, 39 (14–19); UnionPay 62, 81 (16–19); Maestro 5018, 5020, 5038, 5893, 6304, 6759,
 * 6761–6763 (16–19); Mir 2200–2204 (16–19); RuPay 508, 60 (16).
 *
 * Deliberately left out: 12–13-digit numbers (legacy Visa, short Maestro) — no longer issued, and
 * the length of millisecond timestamps and EAN-13 barcodes, which would collide constantly.
 */
export function cardScheme(digits: string): string | undefined {
  const len = digits.length;
  const d1 = digits.charCodeAt(0) - DIGIT_0;
  const p2 = prefix(digits, 2);
  const p3 = prefix(digits, 3);
  const p4 = prefix(digits, 4);
  const p6 = prefix(digits, 6);
  const long = len >= 16 && len <= 19;
  if (d1 === 4) return len === 16 || len === 19 ? 'visa' : undefined;
  if (((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) && len === 16) return 'mastercard';
  if ((p2 === 34 || p2 === 37) && len === 15) return 'amex';
  if ((p4 === 6011 || (p3 >= 644 && p3 <= 649) || p2 === 65 || (p6 >= 622126 && p6 <= 622925)) && long) return 'discover';
  if (p4 >= 3528 && p4 <= 3589 && long) return 'jcb';
  if (((p3 >= 300 && p3 <= 305) || p4 === 3095 || p2 === 36 || p2 === 38 || p2 === 39) && len >= 14 && len <= 19) return 'diners';
  if ((p2 === 62 || p2 === 81) && long) return 'unionpay';
  if ([5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763].includes(p4) && long) return 'maestro';
  if (p4 >= 2200 && p4 <= 2204 && long) return 'mir';
  if ((p3 === 508 || p2 === 60) && len === 16) return 'rupay';
  return undefined;
}

// Left of a number: a letter, digit, `_`, `.`, `+` or `-` means it belongs to something else (an
// identifier, a decimal, a phone number, a negative number).
function badBefore(c: number): boolean {
  return isAlnum(c) || c === 95 || c === 46 || c === 43 || c === 45;
}

// Right of a number: a letter, `_`, `+` or `-` joins it to a word; `.` or `,` followed by a digit
// makes it the integer part of a decimal.
function badAfter(text: string, end: number): boolean {
  if (end >= text.length) return false;
  const c = text.charCodeAt(end);
  if (isAlnum(c) || c === 95 || c === 43 || c === 45) return true;
  if (c === 46 || c === 44) {
    const n = text.charCodeAt(end + 1);
    return n >= 48 && n <= 57;
  }
  return false;
}

/**
 * isCardCandidate applies the grouping rules to a run of digit groups (one kind of separator):
 * the first group has 4–6 digits and every other group 3–6, as cards are printed (4-4-4-4,
 * 4-6-5, 4-4-4-4-3); then the scheme and Luhn checks.
 */
function isCard(groups: readonly string[]): boolean {
  let digits = '';
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i] as string;
    if (groups.length > 1 && (g.length > 6 || g.length < (i === 0 ? 4 : 3))) return false;
    digits += g;
  }
  if (digits.length < 14 || digits.length > 19) return false;
  return cardScheme(digits) !== undefined && luhnValid(digits);
}

function scanRun(text: string, start: number, run: string, out: Span[]): void {
  const hasSpace = run.includes(' ');
  const hasDash = run.includes('-');
  if (!(hasSpace && hasDash)) {
    const groups = hasSpace ? run.split(' ') : hasDash ? run.split('-') : [run];
    if (isCard(groups)) {
      out.push({ start, end: start + run.length, kind: 'card_number' });
      return;
    }
  }
  // Not a card as a whole. Numbers beside each other in prose or tables are separated by spaces
  // ("2023 4111111111111111"): look at each space-separated piece on its own (a piece may be
  // dash-grouped), and no other split — more windows would mean more false hits. Dash-joined
  // pieces stay together: "2024-4111111111111111" is one identifier.
  if (!hasSpace) return;
  let at = start;
  for (const piece of run.split(' ')) {
    if (piece.length >= 14 && isCard(piece.split('-'))) out.push({ start: at, end: at + piece.length, kind: 'card_number' });
    at += piece.length + 1;
  }
}

/** cardNumberDetector finds payment card numbers (Luhn-checked, known IIN ranges, card-like grouping). */
export const cardNumberDetector: Detector = Object.freeze({
  kind: 'card_number',
  minLength: 14,
  screen(text: string): boolean {
    // Fourteen digits in the text at all, counted without a regex.
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c >= 48 && c <= 57 && ++n >= 14) return true;
    }
    return false;
  },
  scan(text: string, out: Span[]): void {
    DIGIT_RUN.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = DIGIT_RUN.exec(text)) !== null) {
      const start = m.index;
      const end = start + m[0].length;
      if (start > 0 && badBefore(text.charCodeAt(start - 1))) continue;
      if (badAfter(text, end)) continue;
      scanRun(text, start, m[0], out);
    }
  },
});
