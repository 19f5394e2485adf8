import { describe, expect, it } from 'vitest';
import { SERVER_NAME_PATTERN, isServerName } from '../src/server-name.js';


const GOOD_NAMES = ['crm', 'a', 'A9', 'files-2', 'db_prod', 'eu.crm', '0', 'x'.repeat(64)];
const BAD_NAMES = ['', '.', '..', '.hidden', '-x', '_x', 'x'.repeat(65), 'a/b', 'a b', 'é', 'crm%2F', 'a\n'];

describe('server name rule', () => {
  it.each(GOOD_NAMES)('accepts %j', (name) => {
    expect(isServerName(name)).toBe(true);
    expect(SERVER_NAME_PATTERN.test(name)).toBe(true);
  });

  it.each(BAD_NAMES)('refuses %j', (name) => {
    expect(isServerName(name)).toBe(false);
  });

  it('refuses what is not a string', () => {
    for (const v of [undefined, null, 1, ['crm'], { name: 'crm' }]) expect(isServerName(v)).toBe(false);
  });
});
