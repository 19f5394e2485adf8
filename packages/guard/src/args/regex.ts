import { RE2 } from 're2-wasm';

/**
 * The `regex` argument constraint's matcher: Google's RE2 (the `re2-wasm` build), which matches in
 * time linear in the input whatever the pattern. V8's own engine backtracks: `^(a+)+$` against a
 * few dozen characters, or `^.*a.*b.*c.*d$` against a few thousand, takes seconds to hours, and a
 * length cap does not save it.
 *
 * A pattern must be valid JavaScript (`u` flag) *and* valid RE2, so a policy author's pattern means
 * what it reads as: RE2 extensions JavaScript lacks (`(?P<n>…)`, `\z`, `(?i)`) are refused, and so
 * is what RE2 cannot do in linear time (backreferences, lookaround). Where the two engines agree on
 * syntax they agree on answers, with two documented exceptions (docs/guard.md): RE2's `\s` is ASCII
 * whitespace only, and its `.` matches `\r`, U+2028 and U+2029 (it excludes only `\n`).
 */

/** ArgRegexError is a pattern the matcher refuses; the message is the rule, for the policy error. */
export class ArgRegexError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArgRegexError';
  }
}

/** MAX_REPEAT is the largest counted repetition (`{n}`, `{n,m}`) RE2 accepts. */
export const MAX_REPEAT = 1000;

/** ArgRegex is one compiled pattern; `test` is a search (`RegExp.prototype.test` semantics). */
export class ArgRegex {
  readonly source: string;
  private readonly re: RE2;

  private constructor(source: string, re: RE2) {
    this.source = source;
    this.re = re;
  }

  /** compile checks `source` against both syntaxes; throws {@link ArgRegexError} naming the rule. */
  static compile(source: string): ArgRegex {
    try {
      new RegExp(source, 'u');
    } catch (err) {
      throw new ArgRegexError(`does not compile: ${(err as Error).message}`);
    }
    const unsupported = unsupportedFeature(source);
    if (unsupported === SURROGATE) throw new ArgRegexError('surrogate escapes (\\uD800–\\uDFFF) are not supported: write the code point as \\u{…}');
    if (unsupported !== undefined) throw new ArgRegexError(`${unsupported} are not supported (patterns run on RE2, which matches in linear time)`);
    try {
      return new ArgRegex(source, new RE2(source, 'u'));
    } catch (err) {
      throw new ArgRegexError(re2Rule((err as Error).message));
    }
  }

  /** test reports whether the pattern matches somewhere in `input`. */
  test(input: string): boolean {
    return this.re.test(input);
  }
}

const SURROGATE = 'surrogate';

/**
 * unsupportedFeature names a feature of a (JavaScript-valid) pattern that RE2 lacks because it
 * needs backtracking, so the refusal says why rather than quoting RE2's parser; or
 * {@link SURROGATE} for `\uD83D`-style escapes, which JavaScript pairs into one code point and RE2
 * would read as two characters that never match (a silent difference, so refused).
 */
function unsupportedFeature(source: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i];
    if (ch === '\\') {
      const next = source[i + 1] ?? '';
      if (next === 'u' && /^[dD][89a-fA-F][0-9a-fA-F]{2}$/.test(source.slice(i + 2, i + 6))) return SURROGATE;
      if (!inClass && next === 'k' && source[i + 2] === '<') return 'named backreferences (\\k<name>)';
      if (!inClass && next >= '1' && next <= '9') return 'backreferences (\\1 … \\9)';
      i++;
    } else if (inClass) {
      if (ch === ']') inClass = false;
    } else if (ch === '[') {
      inClass = true;
    } else if (ch === '(' && source[i + 1] === '?') {
      const op = source.slice(i + 2, i + 4);
      if (op.startsWith('=') || op.startsWith('!')) return 'lookahead assertions ((?=…), (?!…))';
      if (op === '<=' || op === '<!') return 'lookbehind assertions ((?<=…), (?<!…))';
    }
  }
  return undefined;
}

/** re2Rule turns RE2's parser message into the rule a policy author reads. */
function re2Rule(message: string): string {
  const m = /: ([^:]+(?:: .*)?)$/.exec(message.replace(/^Invalid regular expression: \/.*\/u: /, ': '));
  const detail = m?.[1] ?? message;
  if (/invalid repetition size/.test(detail)) return `repetition counts above ${MAX_REPEAT} are not supported (RE2)`;
  if (/pattern too large|program size/.test(detail)) return 'too large for RE2 once its repetitions are expanded';
  return `does not compile as RE2: ${detail}`;
}
