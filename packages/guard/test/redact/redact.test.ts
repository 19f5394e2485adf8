import { describe, expect, it } from 'vitest';
import { GuardError, type GuardErrorCode } from '../../src/errors.js';
import { anchoredDetector, isAlnum } from '../../src/redact/detector.js';
import { BUILTIN_PROFILES, combineProfiles, createProfile, getProfile } from '../../src/redact/profiles.js';
import { redactJsonValue, redactText, redactionMarker } from '../../src/redact/redact.js';

function codeOf(fn: () => unknown): GuardErrorCode | string {
  try {
    fn();
  } catch (err) {
    return err instanceof GuardError ? err.code : `not a GuardError: ${String(err)}`;
  }
  return 'no error';
}

const AWS = 'AKIAIOSFODNN7EXAMPLE';
const CARD = '4111 1111 1111 1111';

describe('redactText', () => {
  it('returns the same string and shared empty counts when nothing matches', () => {
    const text = 'Order 1042 shipped to Berlin on 2024-06-01.';
    const r = redactText(text, 'secrets');
    expect(r.text).toBe(text);
    expect(r.total).toBe(0);
    expect(Object.isFrozen(r.counts)).toBe(true);
  });

  it('counts per kind and replaces in place, keeping the text around', () => {
    const r = redactText(`a ${AWS} b ${CARD} c ${AWS}`, 'secrets');
    expect(r.text).toBe('a [REDACTED:aws_access_key] b [REDACTED:card_number] c [REDACTED:aws_access_key]');
    expect(r.counts).toEqual({ aws_access_key: 2, card_number: 1 });
    expect(r.total).toBe(3);
  });

  it('overlapping matches: the earliest, then longest, wins and is counted once', () => {
    // An AWS key id inside a PEM body is part of the key.
    const pem = `-----BEGIN PRIVATE KEY-----\nMIGH${AWS}AgEAMBMGByqGSM49\n-----END PRIVATE KEY-----`;
    expect(redactText(pem, 'secrets').counts).toEqual({ private_key: 1 });
  });

  it('markers name the kind', () => {
    expect(redactionMarker('jwt')).toBe('[REDACTED:jwt]');
  });

  it('rejects a non-string and an unknown profile', () => {
    expect(() => redactText(42 as unknown as string, 'secrets')).toThrow(TypeError);
    expect(codeOf(() => redactText('x', 'nope'))).toBe('GUARD_ERR_PROFILE');
  });

  it('a profile runs only its detectors', () => {
    const text = `${AWS} ${CARD}`;
    expect(redactText(text, 'credentials').text).toBe(`[REDACTED:aws_access_key] ${CARD}`);
    expect(redactText(text, getProfile('cards')).text).toBe(`${AWS} [REDACTED:card_number]`);
  });
});

describe('redactJsonValue', () => {
  const result = {
    content: [
      { type: 'text', text: 'Customer 1042: Ada Lovelace, ada@example.org' },
      { type: 'text', text: `card on file ${CARD}` },
    ],
    structuredContent: { customer: { id: 1042, tags: ['vip', `key ${AWS}`], note: null, active: true } },
    isError: false,
  };

  it('returns the very same object when nothing matched', () => {
    const clean = { content: [{ type: 'text', text: 'nothing to see' }], n: 4111111111111111, deep: { a: [1, 'two', { b: null }] } };
    const r = redactJsonValue(clean, 'secrets');
    expect(r.value).toBe(clean);
    expect(r.total).toBe(0);
    expect(r.counts).toEqual({});
  });

  it('copies only the changed path and shares untouched subtrees', () => {
    const r = redactJsonValue(result, 'secrets');
    expect(r.value).not.toBe(result);
    expect(r.counts).toEqual({ card_number: 1, aws_access_key: 1 });
    expect(r.total).toBe(2);
    expect(r.value.content[0]).toBe(result.content[0]);
    expect(r.value.content[1]).toEqual({ type: 'text', text: 'card on file [REDACTED:card_number]' });
    expect(r.value.structuredContent.customer.tags).toEqual(['vip', 'key [REDACTED:aws_access_key]']);
    expect(r.value.structuredContent.customer.id).toBe(1042);
    // The input is untouched.
    expect(result.content[1]?.text).toBe(`card on file ${CARD}`);
  });

  it('keeps key order, leaves keys alone (even secret-looking ones) and numbers alone', () => {
    const v = { z: 1, [AWS]: 'value', a: `${AWS}`, n: 4111111111111111 };
    const r = redactJsonValue(v, 'secrets');
    expect(Object.keys(r.value)).toEqual(['z', AWS, 'a', 'n']);
    expect(r.value).toEqual({ z: 1, [AWS]: 'value', a: '[REDACTED:aws_access_key]', n: 4111111111111111 });
  });

  it('a "__proto__" key stays a plain own property', () => {
    const v = JSON.parse(`{"__proto__":{"polluted":"yes"},"t":"${AWS}"}`) as Record<string, unknown>;
    const r = redactJsonValue(v, 'secrets');
    expect(Object.getPrototypeOf(r.value)).toBe(Object.prototype);
    expect(Object.hasOwn(r.value as object, '__proto__')).toBe(true);
    expect(JSON.stringify(r.value)).toBe('{"__proto__":{"polluted":"yes"},"t":"[REDACTED:aws_access_key]"}');
  });

  it('redacts a bare string and passes primitives through', () => {
    expect(redactJsonValue(AWS, 'secrets').value).toBe('[REDACTED:aws_access_key]');
    for (const v of [null, 1, true, undefined]) expect(redactJsonValue(v, 'secrets').value).toBe(v);
  });

  it('refuses values nested deeper than maxDepth', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(codeOf(() => redactJsonValue(deep, 'secrets', { maxDepth: 32 }))).toBe('GUARD_ERR_TOO_DEEP');
    expect(redactJsonValue(deep, 'secrets', { maxDepth: 64 }).value).toBe(deep);
  });
});

describe('profiles', () => {
  it('secrets holds every built-in kind; credentials all but cards', () => {
    expect([...(BUILTIN_PROFILES.get('secrets')?.kinds ?? [])].sort()).toEqual(
      ['aws_access_key', 'aws_secret_key', 'card_number', 'github_token', 'jwt', 'private_key', 'slack_token', 'slack_webhook', 'stripe_key'],
    );
    expect(BUILTIN_PROFILES.get('credentials')?.kinds).not.toContain('card_number');
  });

  it('combineProfiles runs each detector once', () => {
    const p = combineProfiles(['credentials', 'cards', 'secrets']);
    expect(p.kinds.length).toBe(9);
    expect(p.name).toBe('credentials+cards+secrets');
  });

  it('custom detectors and profiles can be added', () => {
    const ticket = anchoredDetector({ kind: 'internal_ticket', anchors: ['TKT-'], pattern: /TKT-[0-9]{6}(?![0-9])/, minLength: 10, notAfter: isAlnum });
    const p = createProfile('internal', [ticket, 'aws_access_key']);
    const r = redactText(`see TKT-004211 and ${AWS} and XTKT-000001`, p);
    expect(r.text).toBe('see [REDACTED:internal_ticket] and [REDACTED:aws_access_key] and XTKT-000001');
    const extra = new Map([['internal', p]]);
    expect(getProfile('internal', extra)).toBe(p);
    expect(combineProfiles(['internal', 'cards'], extra).kinds).toEqual(['internal_ticket', 'aws_access_key', 'card_number']);
  });

  it('anchors that overlap or extend one another still wake every detector', () => {
    const short = anchoredDetector({ kind: 'short', anchors: ['AB'], pattern: /AB[0-9]{8}/, minLength: 10 });
    const long = anchoredDetector({ kind: 'long', anchors: ['AB1'], pattern: /AB1-[a-z]{8}/, minLength: 12 });
    const tail = anchoredDetector({ kind: 'tail', anchors: ['CDE'], pattern: /CDE_[a-z]{6}/, minLength: 10 });
    const p = createProfile('overlap', [short, long, tail]);
    // The screen reports "AB1" at 0, which hides "AB" there; "ABCDE" hides "CDE" at 2 unless the
    // screen steps one character at a time.
    expect(redactText('AB12345678', p).counts).toEqual({ short: 1 });
    expect(redactText('AB1-abcdefgh', p).counts).toEqual({ long: 1 });
    expect(redactText('ABCDE_abcdef', p).counts).toEqual({ tail: 1 });
  });

  it.each([
    ['unknown kind', () => createProfile('x', ['nope'])],
    ['duplicate kind', () => createProfile('x', ['jwt', 'jwt'])],
    ['empty', () => createProfile('x', [])],
    ['bad name', () => createProfile('Has Spaces', ['jwt'])],
    ['unknown profile', () => getProfile('pci')],
  ])('%s → GUARD_ERR_PROFILE', (_n, fn) => {
    expect(codeOf(fn)).toBe('GUARD_ERR_PROFILE');
  });
});

describe('bounded work on hostile input', () => {
  // Each input is built to make a naive pattern backtrack; every one must finish in linear time.
  // Budgets are generous (shared CI cores) but orders of magnitude below quadratic behaviour.
  const n = 200_000;
  it.each([
    ['eyJ repeated', 'eyJ'.repeat(n / 3)],
    ['eyJ. repeated', 'eyJa.'.repeat(n / 5)],
    ['a long header without dots', ` eyJ${'A'.repeat(n)}`],
    ['digits with single spaces', '4 '.repeat(n / 2)],
    ['a long digit run', '4'.repeat(n)],
    ['AKIA repeated', 'AKIA'.repeat(n / 4)],
    ['BEGIN without END', '-----BEGIN PRIVATE KEY-----\n'.repeat(n / 28)],
    ['one BEGIN and a huge body', `-----BEGIN RSA PRIVATE KEY-----\n${'A'.repeat(n)}`],
    ['labels without values', 'aws_secret_access_key = '.repeat(n / 24)],
    ['ghp_ repeated', 'ghp_'.repeat(n / 4)],
    ['xoxb- repeated', 'xoxb-'.repeat(n / 5)],
    ['sk_live_ repeated', 'sk_live_'.repeat(n / 8)],
  ])('%s', (_name, text) => {
    const t0 = performance.now();
    redactText(text, 'secrets');
    expect(performance.now() - t0).toBeLessThan(1500);
  });
});
