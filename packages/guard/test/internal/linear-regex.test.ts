import { describe, expect, it } from 'vitest';
import { LinearRegex, LinearRegexError } from '../../src/internal/linear-regex.js';

// Differential: every pattern must answer exactly as JavaScript's own engine (u flag) does.
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
  '^[\\b]$',
  '^\\0$',
  '\\$\\^\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|',
  '^\\ud83d\\ude00$',
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
];

describe('LinearRegex agrees with RegExp (u flag)', () => {
  it.each(PATTERNS)('/%s/u', (pattern) => {
    const native = new RegExp(pattern, 'u');
    const linear = LinearRegex.compile(pattern);
    for (const input of INPUTS) expect([input, linear.test(input)]).toEqual([input, native.test(input)]);
  });
});

describe('LinearRegex refuses what needs backtracking', () => {
  it.each([
    ['(a)\\1', /backreferences/],
    ['(?<n>a)\\k<n>', /named backreferences/],
    ['a(?=b)', /lookahead/],
    ['a(?!b)', /lookahead/],
    ['(?<=a)b', /lookbehind/],
    ['(?<!a)b', /lookbehind/],
    ['(a', /does not compile/],
    ['a{2,1}', /does not compile/],
    ['\\q', /does not compile/],
    ['(?:a{1000}){1000}', /too large/],
    ['a{1001}', /above 1000/],
  ])('%s', (pattern, message) => {
    expect(() => LinearRegex.compile(pattern)).toThrow(LinearRegexError);
    expect(() => LinearRegex.compile(pattern)).toThrow(message);
  });
});

describe('LinearRegex time is linear in the input', () => {
  it.each([
    ['^(a+)+$', `${'a'.repeat(20_000)}!`],
    ['^(a|a)*b$', 'a'.repeat(20_000)],
    ['^.*a.*b.*c.*d$', 'abc'.repeat(7_000)],
    ['^(\\w+\\s?)*$', `${'word '.repeat(4_000)}!`],
    ['(x+x+)+y', 'x'.repeat(20_000)],
  ])('%s', (pattern, input) => {
    const re = LinearRegex.compile(pattern);
    const t0 = performance.now();
    expect(re.test(input)).toBe(false);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});
