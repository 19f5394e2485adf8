import { describe, expect, it } from 'vitest';
import { cardScheme, luhnValid } from '../../src/redact/card.js';
import { redactText } from '../../src/redact/redact.js';

describe('luhnValid', () => {
  it.each([
    ['4111111111111111', true],
    ['4111111111111112', false],
    ['378282246310005', true],
    ['79927398713', true],
    ['79927398710', false],
    ['0', true],
    ['12a4', false],
  ])('%s → %s', (digits, ok) => {
    expect(luhnValid(digits)).toBe(ok);
  });
});

describe('cardScheme', () => {
  it.each([
    ['4111111111111111', 'visa'],
    ['4000056655665556', 'visa'],
    ['4111111111111111110', 'visa'],
    ['5555555555554444', 'mastercard'],
    ['2223003122003222', 'mastercard'],
    ['2720999999999996', 'mastercard'],
    ['378282246310005', 'amex'],
    ['371449635398431', 'amex'],
    ['6011111111111117', 'discover'],
    ['6445644564456445', 'discover'],
    ['6500000000000002', 'discover'],
    ['3566002020360505', 'jcb'],
    ['30569309025904', 'diners'],
    ['36227206271667', 'diners'],
    ['6200000000000005', 'unionpay'],
    ['6759649826438453', 'maestro'],
    ['2200123456789019', 'mir'],
  ])('%s is %s', (digits, scheme) => {
    expect(cardScheme(digits)).toBe(scheme);
    expect(luhnValid(digits)).toBe(true);
  });

  it.each([
    ['4111111111111', 'a 13-digit Visa (no longer issued; the length of ms timestamps and EAN-13)'],
    ['411111111111111', 'a 15-digit Visa'],
    ['5555555555554444000', 'a 19-digit Mastercard'],
    ['37828224631000', 'a 14-digit Amex'],
    ['1234567812345670', 'prefix 1 (no scheme)'],
    ['9999999999999995', 'prefix 9'],
    ['2721000000000004', 'just past the Mastercard 2-series'],
    ['7000000000000000', 'prefix 7'],
  ])('%s is no card: %s', (digits) => {
    expect(cardScheme(digits)).toBeUndefined();
  });
});

describe('card numbers in text', () => {
  it.each([
    ['4111 1111 1111 1111', 'spaces'],
    ['4111-1111-1111-1111', 'dashes'],
    ['4111111111111111', 'plain'],
    ['3782 822463 10005', 'Amex 4-6-5'],
    ['3056 930902 5904', 'Diners 4-6-4'],
    ['4111 1111 1111 1111 110', '19 digits 4-4-4-4-3'],
    ['5555555555554444', 'Mastercard'],
    ['6011 0009 9013 9424', 'Discover'],
  ])('%s (%s) is redacted', (card) => {
    for (const text of [`Card: ${card}`, `card=${card};`, `"pan":"${card}"`, `(${card})`, `${card}.`, `${card}`, `paid with ${card}, thanks`]) {
      const r = redactText(text, 'secrets');
      expect(r.text, text).toBe(text.replace(card, '[REDACTED:card_number]'));
      expect(r.counts).toEqual({ card_number: 1 });
    }
  });

  it('finds a card next to another number separated by a space', () => {
    expect(redactText('2023 4111111111111111', 'secrets').text).toBe('2023 [REDACTED:card_number]');
    expect(redactText('qty 12 4111-1111-1111-1111', 'secrets').text).toBe('qty 12 [REDACTED:card_number]');
  });

  it('finds every card in a table', () => {
    const rows = ['| name | card |', '| Ann | 4242 4242 4242 4242 |', '| Bob | 5555-5555-5555-4444 |', '| Cy | 378282246310005 |'].join('\n');
    expect(redactText(rows, 'secrets').counts).toEqual({ card_number: 3 });
  });

  it.each([
    ['4111 1111-1111 1111', 'mixed separators'],
    ['4111  1111 1111 1111', 'double space'],
    ['41 11 11 11 11 11 11 11', 'groups of two'],
    ['41111111 11111111', 'groups of eight'],
    ['4111 1111 1111 1111 2023', 'five groups making 20 digits'],
    ['4111111111111111x', 'a letter after'],
    ['x4111111111111111', 'a letter before'],
    ['4111111111111111_1', 'an underscore after'],
    ['-4111111111111111', 'a minus before'],
    ['+4111111111111111', 'a plus before'],
    ['0.4111111111111111', 'a decimal fraction'],
    ['4111111111111111.25', 'an amount'],
    ['4111111111111111,25', 'a European amount'],
  ])('%s (%s) is not redacted', (text) => {
    expect(redactText(text, 'secrets').counts).toEqual({});
  });

  it('the cards profile finds cards and nothing else', () => {
    const r = redactText('4111111111111111 AKIAIOSFODNN7EXAMPLE', 'cards');
    expect(r.text).toBe('[REDACTED:card_number] AKIAIOSFODNN7EXAMPLE');
  });
});
