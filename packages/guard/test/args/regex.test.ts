import { describe, expect, it } from 'vitest';
import { ArgRegex, ArgRegexError } from '../../src/args/regex.js';

// Differential: on every pattern both engines accept, RE2 answers exactly as JavaScript's (u flag).
const PATTERNS = [
  'abc',
  '^abc$',
  '^a|b$',
  '^(?:foo|bar)+$',
  '^(a+)+$',
  '^[A-Z]{2,5}-[0-9]{1,6}$',
  '^[^/]+\\.csv$',
  '^\\d{3}-\\d{2}-\\d{4}$',
  '\\bword\\b',
  '\\Bor\\B',
  '^\\w+@\\w+\\.(com|org)$',
  '^\\s*$',
  '^\\S+$',
  '^[\\w.-]+$',
  '^[\\D]+$',
  '^[^\\d\\s]+$',
  'a.c',
  '^.{2,4}$',
  '^x*?y$',
  '^(ab|a)(bc|c)$',
  '^(?<year>\\d{4})-(?<m>\\d{2})$',
  '^\\u0041\\x42\\u{1F600}$',
  '^[\\u{1F600}-\\u{1F64F}]+$',
  '^\\p{L}+$',
  '^\\P{L}+$',
  '^[a-]+$',
  '^[-a]+$',
  '^\\/api\\/v[12]\\/',
  '^(|a)b$',
  '^a{0}b$',
  '^a{2,}$',
  '^(?:a|b|)*c$',
  '^\\cJ$',
  '^\\0$',
  '\\$\\^\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|',
  '$',
  '^',
  '',
];

const INPUTS = [
  '',
  'abc',
  'xabcx',
  'a',
  'b',
  'ab',
  'abcabc',
  'foobar',
  'foofoo',
  'fo',
  'aaaa',
  'aaaa!',
  'OPS-42',
  'ops-42',
  'report.csv',
  'dir/report.csv',
  '123-45-6789',
  'a word here',
  'swordfish',
  'forlorn',
  'me@example.org',
  'me@example.net',
  '   ',
  '\t\n',
  'a-b.c_d',
  'a\nc',
  'abc\n',
  'xxy',
  'abc',
  '2024-06',
  'AB😀',
  '😀😃',
  'héllo',
  'ünïcödé',
  '1234',
  '--a-',
  '/api/v1/users',
  '/api/v3/users',
  'b',
  'aab',
  'ababc',
  '\n',
  '\b',
  '\0',
  '$^.*+?()[]{}|',
  '😀',
  '\ud83d',
  'αβγ',
  // Near the documented divergences, so a pattern without \\s or . still must agree on them.
  'a\u00a0b',
  'a\rc',
  '\v',
];

describe('ArgRegex (RE2) agrees with RegExp (u flag)', () => {
  it.each(PATTERNS)('/%s/u', (pattern) => {
    const native = new RegExp(pattern, 'u');
    const re2 = ArgRegex.compile(pattern);
    for (const input of INPUTS) {
      // The two documented divergences (docs/guard.md), checked exactly in their own test below.
      if (/\\s|\\S|\./.test(pattern) && /[\u00a0\r\v]/.test(input)) continue;
      expect([input, re2.test(input)]).toEqual([input, native.test(input)]);
    }
  });

  it('where they differ, as documented: \\s is ASCII whitespace; . matches everything but \\n', () => {
    const space = ArgRegex.compile('^\\s$');
    expect(['\t', '\n', '\f', '\r', ' ', '\v', '\u00a0', '\u2028'].map((c) => space.test(c))).toEqual([true, true, true, true, true, false, false, false]);
    expect(['\t', '\n', '\f', '\r', ' ', '\v', '\u00a0', '\u2028'].map((c) => /^\s$/u.test(c))).toEqual([true, true, true, true, true, true, true, true]);
    const dot = ArgRegex.compile('^.$');
    expect(['a', '\n', '\r', '\u2028', '\u2029', '😀'].map((c) => dot.test(c))).toEqual([true, false, true, true, true, true]);
    expect(['a', '\n', '\r', '\u2028', '\u2029', '😀'].map((c) => /^.$/u.test(c))).toEqual([true, false, false, false, false, true]);
  });
});

describe('ArgRegex refuses what RE2 cannot match in linear time, and what is not JavaScript', () => {
  it.each([
    ['(a)\\1', 'backreferences (\\1 … \\9) are not supported (patterns run on RE2, which matches in linear time)'],
    ['(?<n>a)\\k<n>', 'named backreferences (\\k<name>) are not supported (patterns run on RE2, which matches in linear time)'],
    ['a(?=b)', 'lookahead assertions ((?=…), (?!…)) are not supported (patterns run on RE2, which matches in linear time)'],
    ['a(?!b)', 'lookahead assertions ((?=…), (?!…)) are not supported (patterns run on RE2, which matches in linear time)'],
    ['(?<=a)b', 'lookbehind assertions ((?<=…), (?<!…)) are not supported (patterns run on RE2, which matches in linear time)'],
    ['(?<!a)b', 'lookbehind assertions ((?<=…), (?<!…)) are not supported (patterns run on RE2, which matches in linear time)'],
    ['a{1001}', 'repetition counts above 1000 are not supported (RE2)'],
    ['[\\b]', 'does not compile as RE2: invalid escape sequence: \\b'],
  ])('%s', (pattern, rule) => {
    expect(() => ArgRegex.compile(pattern)).toThrow(ArgRegexError);
    expect(() => ArgRegex.compile(pattern)).toThrow(rule);
  });

  it('(?= inside a class, or escaped, is not lookaround', () => {
    expect(ArgRegex.compile('^[(?=]+$').test('(?=')).toBe(true);
    expect(ArgRegex.compile('^\\(\\?=x\\)$').test('(?=x)')).toBe(true);
  });

  it('Unicode properties: the short general categories, not scripts or binary properties', () => {
    expect(ArgRegex.compile('^\\p{Lu}\\p{Ll}+$').test('Élan')).toBe(true);
    expect(ArgRegex.compile('^\\P{L}+$').test('123')).toBe(true);
    expect(() => ArgRegex.compile('^\\p{Script=Greek}+$')).toThrow('does not compile as RE2: invalid character class range: \\p{Script=Greek}');
    expect(() => ArgRegex.compile('^\\p{Emoji_Presentation}+$')).toThrow('does not compile as RE2: invalid character class range: \\p{Emoji_Presentation}');
  });

  it('surrogate escapes are refused: RE2 would read each half as a character of its own', () => {
    const rule = 'surrogate escapes (\\uD800–\\uDFFF) are not supported: write the code point as \\u{…}';
    expect(() => ArgRegex.compile('^\\ud83d\\ude00$')).toThrow(rule);
    expect(() => ArgRegex.compile('^[\\uD83D]$')).toThrow(rule);
    expect(ArgRegex.compile('^\\u{1F600}$').test('😀')).toBe(true);
    expect(ArgRegex.compile('^\\\\ud83d$').test('\\ud83d')).toBe(true);
  });

  it.each([
    ['(a', /^does not compile: Invalid regular expression/],
    ['a{2,1}', /^does not compile: Invalid regular expression/],
    ['\\q', /^does not compile: Invalid regular expression/],
    // RE2 syntax that JavaScript does not have: refused, so a pattern reads the same to everyone.
    ['(?P<n>a)', /^does not compile: Invalid regular expression/],
    ['(?i)abc', /^does not compile: Invalid regular expression/],
  ])('not JavaScript: %s', (pattern, rule) => {
    expect(() => ArgRegex.compile(pattern)).toThrow(rule);
  });

  it('a pattern too large once expanded is refused', () => {
    expect(() => ArgRegex.compile('(?:(?:(?:a{1000}){1000}){1000})')).toThrow(/^(too large for RE2|repetition counts above 1000)/);
  });
});

describe('ArgRegex answers patterns that make a backtracking engine explode', () => {
  it.each([
    ['^(a+)+$', `${'a'.repeat(20_000)}!`, false],
    ['^(a|a)*b$', 'a'.repeat(20_000), false],
    ['^.*a.*b.*c.*d$', 'abc'.repeat(7_000), false],
    ['^.*a.*b.*c.*d$', `${'abc'.repeat(7_000)}d`, true],
    ['^(\\w+\\s?)*$', `${'word '.repeat(4_000)}!`, false],
    ['(x+x+)+y', 'x'.repeat(20_000), false],
  ])('%s', (pattern, input, expected) => {
    expect(ArgRegex.compile(pattern).test(input)).toBe(expected);
  });
});
