/**
 * The parser of {@link LinearRegex} patterns: JavaScript's `u`-flag syntax, minus backreferences
 * and lookaround (which need backtracking), into a small syntax tree.
 */

const MAX_REPEAT = 1000;

/** LinearRegexError explains why a pattern is refused; the message is one rule. */
export class LinearRegexError extends Error {
  override readonly name = 'LinearRegexError';
}

/** CharTest tells whether a code point belongs to a set. */
export type CharTest = (cp: number) => boolean;

/** CharSet is a parsed character class: ranges, extra tests, negation. */
export interface CharSet {
  ranges: number[]; // lo, hi pairs
  tests: CharTest[];
  negate: boolean;
}

/** Node is the parsed pattern. */
export type Node =
  | { t: 'set'; set: CharSet }
  | { t: 'cat'; items: Node[] }
  | { t: 'alt'; items: Node[] }
  | { t: 'rep'; node: Node; min: number; max: number }
  | { t: 'assert'; kind: AssertKind }
  | { t: 'empty' };

/** AssertKind numbers the zero-width assertions: `^`, `$`, `\b`, `\B`. */
export type AssertKind = 0 | 1 | 2 | 3;
export const A_START = 0;
export const A_END = 1;
export const A_WORD = 2;
export const A_NOT_WORD = 3;

/** isWordCp is `\w` without the `i` flag: ASCII letters, digits, `_`. */
export const isWordCp: CharTest = (c) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isDigitCp: CharTest = (c) => c >= 48 && c <= 57;
const SPACE_RANGES = [9, 13, 32, 32, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff];
const isSpaceCp: CharTest = (c) => {
  for (let i = 0; i < SPACE_RANGES.length; i += 2) if (c >= (SPACE_RANGES[i] as number) && c <= (SPACE_RANGES[i + 1] as number)) return true;
  return false;
};
const isLineTerminator: CharTest = (c) => c === 10 || c === 13 || c === 0x2028 || c === 0x2029;

function literal(cp: number): CharSet {
  return { ranges: [cp, cp], tests: [], negate: false };
}

class Parser {
  private i = 0;
  private readonly cps: number[];

  constructor(readonly source: string) {
    this.cps = [...source].map((c) => c.codePointAt(0) as number);
  }

  private peek(off = 0): number {
    return this.cps[this.i + off] ?? -1;
  }

  private fail(rule: string): never {
    throw new LinearRegexError(rule);
  }

  parse(): Node {
    const n = this.alt();
    if (this.i < this.cps.length) this.fail(`unexpected "${String.fromCodePoint(this.peek())}"`);
    return n;
  }

  private alt(): Node {
    const items = [this.cat()];
    while (this.peek() === 0x7c /* | */) {
      this.i++;
      items.push(this.cat());
    }
    return items.length === 1 ? (items[0] as Node) : { t: 'alt', items };
  }

  private cat(): Node {
    const items: Node[] = [];
    for (;;) {
      const c = this.peek();
      if (c === -1 || c === 0x7c || c === 0x29 /* ) */) break;
      items.push(this.quantified());
    }
    if (items.length === 0) return { t: 'empty' };
    return items.length === 1 ? (items[0] as Node) : { t: 'cat', items };
  }

  private quantified(): Node {
    const atom = this.atom();
    let min: number;
    let max: number;
    const c = this.peek();
    if (c === 0x2a /* * */) [min, max] = [0, Infinity];
    else if (c === 0x2b /* + */) [min, max] = [1, Infinity];
    else if (c === 0x3f /* ? */) [min, max] = [0, 1];
    else if (c === 0x7b /* { */) {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.source.slice(this.offset()));
      if (m === null) this.fail('a "{" must start a quantifier {n}, {n,} or {n,m}');
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) this.fail(`repetition counts above ${MAX_REPEAT} are not supported`);
      if (max < min) this.fail('numbers out of order in {} quantifier');
      this.i += [...m[0]].length - 1;
    } else return atom;
    this.i++;
    if (this.peek() === 0x3f) this.i++; // lazy: same answer for a yes/no match
    if (atom.t === 'assert') this.fail('an assertion cannot be repeated');
    return { t: 'rep', node: atom, min, max };
  }

  private offset(): number {
    let off = 0;
    for (let k = 0; k < this.i; k++) off += (this.cps[k] as number) > 0xffff ? 2 : 1;
    return off;
  }

  private atom(): Node {
    const c = this.peek();
    this.i++;
    switch (c) {
      case 0x28 /* ( */: {
        if (this.peek() === 0x3f /* ? */) {
          const n1 = this.peek(1);
          if (n1 === 0x3a /* : */) this.i += 2;
          else if (n1 === 0x3d || n1 === 0x21) this.fail('lookahead assertions (?= (?! are not supported');
          else if (n1 === 0x3c /* < */) {
            const n2 = this.peek(2);
            if (n2 === 0x3d || n2 === 0x21) this.fail('lookbehind assertions (?<= (?<! are not supported');
            const close = this.cps.indexOf(0x3e /* > */, this.i);
            if (close < 0) this.fail('unterminated group name');
            this.i = close + 1;
          } else this.fail('unsupported group syntax (?…');
        }
        const inner = this.alt();
        if (this.peek() !== 0x29) this.fail('missing )');
        this.i++;
        return inner;
      }
      case 0x5b /* [ */:
        return { t: 'set', set: this.charClass() };
      case 0x2e /* . */:
        return { t: 'set', set: { ranges: [], tests: [isLineTerminator], negate: true } };
      case 0x5e /* ^ */:
        return { t: 'assert', kind: A_START };
      case 0x24 /* $ */:
        return { t: 'assert', kind: A_END };
      case 0x5c /* \ */:
        return this.escape();
      case -1:
        return this.fail('pattern ends unexpectedly');
      case 0x29:
      case 0x2a:
      case 0x2b:
      case 0x3f:
      case 0x7b:
      case 0x7d:
      case 0x5d:
        return this.fail(`unexpected "${String.fromCodePoint(c)}" (escape it with \\)`);
      default:
        return { t: 'set', set: literal(c) };
    }
  }

  private escape(): Node {
    const c = this.peek();
    if (c === 0x62 /* b */) {
      this.i++;
      return { t: 'assert', kind: A_WORD };
    }
    if (c === 0x42 /* B */) {
      this.i++;
      return { t: 'assert', kind: A_NOT_WORD };
    }
    if (c >= 0x31 && c <= 0x39) this.fail('backreferences (\\1 …) are not supported');
    if (c === 0x6b /* k */) this.fail('named backreferences (\\k<…>) are not supported');
    return { t: 'set', set: this.classEscape(false) };
  }

  /** classEscape parses what follows a backslash (already consumed) as one set of characters. */
  private classEscape(inClass: boolean): CharSet {
    const c = this.peek();
    this.i++;
    switch (c) {
      case 0x64 /* d */:
        return { ranges: [48, 57], tests: [], negate: false };
      case 0x44 /* D */:
        return { ranges: [], tests: [isDigitCp], negate: true };
      case 0x77 /* w */:
        return { ranges: [48, 57, 65, 90, 95, 95, 97, 122], tests: [], negate: false };
      case 0x57 /* W */:
        return { ranges: [], tests: [isWordCp], negate: true };
      case 0x73 /* s */:
        return { ranges: SPACE_RANGES.slice(), tests: [], negate: false };
      case 0x53 /* S */:
        return { ranges: [], tests: [isSpaceCp], negate: true };
      case 0x6e:
        return literal(10);
      case 0x72:
        return literal(13);
      case 0x74:
        return literal(9);
      case 0x66:
        return literal(12);
      case 0x76:
        return literal(11);
      case 0x62 /* b in a class: backspace */:
        if (inClass) return literal(8);
        return this.fail('internal: \\b outside a class');
      case 0x30 /* 0 */:
        if (isDigitCp(this.peek())) this.fail('octal escapes are not supported');
        return literal(0);
      case 0x63 /* c */: {
        const l = this.peek();
        if (!((l >= 65 && l <= 90) || (l >= 97 && l <= 122))) this.fail('\\c must be followed by a letter');
        this.i++;
        return literal(l % 32);
      }
      case 0x78 /* x */:
        return literal(this.hex(2));
      case 0x75 /* u */: {
        if (this.peek() === 0x7b) {
          this.i++;
          const close = this.cps.indexOf(0x7d, this.i);
          if (close < 0) this.fail('unterminated \\u{…}');
          const hex = String.fromCodePoint(...this.cps.slice(this.i, close));
          if (!/^[0-9A-Fa-f]{1,6}$/.test(hex) || parseInt(hex, 16) > 0x10ffff) this.fail('invalid \\u{…} escape');
          this.i = close + 1;
          return literal(parseInt(hex, 16));
        }
        const hi = this.hex(4);
        // A surrogate pair written as two \u escapes is one code point in u-mode.
        if (hi >= 0xd800 && hi <= 0xdbff && this.peek() === 0x5c && this.peek(1) === 0x75) {
          const save = this.i;
          this.i += 2;
          const lo = /^[0-9A-Fa-f]{4}$/.test(String.fromCodePoint(...this.cps.slice(this.i, this.i + 4))) ? this.hex(4) : -1;
          if (lo >= 0xdc00 && lo <= 0xdfff) return literal((hi - 0xd800) * 0x400 + (lo - 0xdc00) + 0x10000);
          this.i = save;
        }
        return literal(hi);
      }
      case 0x70 /* p */:
      case 0x50 /* P */: {
        if (this.peek() !== 0x7b) this.fail('\\p must be followed by {property}');
        const close = this.cps.indexOf(0x7d, this.i);
        if (close < 0) this.fail('unterminated \\p{…}');
        const body = String.fromCodePoint(...this.cps.slice(this.i + 1, close));
        this.i = close + 1;
        let re: RegExp;
        try {
          re = new RegExp(`^\\p{${body}}$`, 'u');
        } catch {
          return this.fail(`unknown Unicode property \\p{${body}}`);
        }
        const test: CharTest = (cp) => re.test(String.fromCodePoint(cp));
        return { ranges: [], tests: [test], negate: c === 0x50 };
      }
      case -1:
        return this.fail('pattern ends with a lone backslash');
      default:
        // Identity escapes: u-mode allows only syntax characters and / (and - inside a class).
        if ('^$\\.*+?()[]{}|/'.includes(String.fromCodePoint(c)) || (inClass && c === 0x2d)) return literal(c);
        return this.fail(`invalid escape \\${String.fromCodePoint(c)}`);
    }
  }

  private hex(n: number): number {
    const s = String.fromCodePoint(...this.cps.slice(this.i, this.i + n));
    if (s.length !== n || !/^[0-9A-Fa-f]+$/.test(s)) this.fail(`invalid hex escape (need ${n} hex digits)`);
    this.i += n;
    return parseInt(s, 16);
  }

  private charClass(): CharSet {
    const set: CharSet = { ranges: [], tests: [], negate: false };
    if (this.peek() === 0x5e) {
      set.negate = true;
      this.i++;
    }
    for (;;) {
      const c = this.peek();
      if (c === -1) this.fail('missing ]');
      if (c === 0x5d) {
        this.i++;
        return set;
      }
      const lo = this.classAtom();
      if (this.peek() === 0x2d /* - */ && this.peek(1) !== 0x5d && this.peek(1) !== -1) {
        this.i++;
        const hi = this.classAtom();
        const a = single(lo);
        const b = single(hi);
        if (a === undefined || b === undefined) this.fail('a class range needs single characters at both ends');
        if (a > b) this.fail('range out of order in character class');
        set.ranges.push(a, b);
      } else {
        merge(set, lo);
      }
    }
  }

  private classAtom(): CharSet {
    const c = this.peek();
    this.i++;
    if (c === 0x5c) return this.classEscape(true);
    return literal(c);
  }
}

function single(s: CharSet): number | undefined {
  return !s.negate && s.tests.length === 0 && s.ranges.length === 2 && s.ranges[0] === s.ranges[1] ? s.ranges[0] : undefined;
}

function merge(into: CharSet, s: CharSet): void {
  if (!s.negate) {
    into.ranges.push(...s.ranges);
    into.tests.push(...s.tests);
    return;
  }
  const inner = compileSet({ ranges: s.ranges, tests: s.tests, negate: false });
  into.tests.push((cp) => !inner(cp));
}

/** compileSet turns a class into a test, with a lookup table for ASCII. */
export function compileSet(s: CharSet): CharTest {
  const ascii = new Uint8Array(128);
  const inSet = (cp: number): boolean => {
    for (let i = 0; i < s.ranges.length; i += 2) if (cp >= (s.ranges[i] as number) && cp <= (s.ranges[i + 1] as number)) return true;
    for (const t of s.tests) if (t(cp)) return true;
    return false;
  };
  for (let cp = 0; cp < 128; cp++) ascii[cp] = inSet(cp) !== s.negate ? 1 : 0;
  const negate = s.negate;
  return (cp) => (cp < 128 ? ascii[cp] === 1 : inSet(cp) !== negate);
}

/** parseRegex parses `source` into a {@link Node}; throws {@link LinearRegexError} naming the rule. */
export function parseRegex(source: string): Node {
  return new Parser(source).parse();
}
