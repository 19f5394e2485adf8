import { describe, expect, it } from 'vitest';
import { CloseCode, MAX_CLOSE_REASON_BYTES, closeReason, sendableCloseCode } from '../src/codes.js';

describe('sendableCloseCode', () => {
  it('passes on the codes a close frame may carry', () => {
    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1014, 3000, 4401, 4502, 4999]) {
      expect(sendableCloseCode(code, 1011)).toBe(code);
    }
  });

  it('replaces reserved, out-of-range and non-integer codes with the fallback', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 4000.5, '1000', null, undefined]) {
      expect(sendableCloseCode(code, CloseCode.BACKEND_FAILED)).toBe(4502);
    }
  });
});

describe('closeReason', () => {
  it('keeps a short reason as it is and turns anything else into ""', () => {
    expect(closeReason('backend exited')).toBe('backend exited');
    expect(closeReason(undefined)).toBe('');
    expect(closeReason(42)).toBe('');
  });

  it('cuts a long reason to the limit on a character boundary, marked with ...', () => {
    const ascii = closeReason('x'.repeat(500));
    expect(ascii).toBe(`${'x'.repeat(MAX_CLOSE_REASON_BYTES - 3)}...`);
    expect(Buffer.byteLength(ascii)).toBe(MAX_CLOSE_REASON_BYTES);
    // Four-byte characters: never split one, never exceed the limit.
    const emoji = closeReason('😀'.repeat(100));
    expect(emoji).toBe(`${'😀'.repeat(29)}...`);
    expect(Buffer.byteLength(emoji)).toBe(119);
    expect(Buffer.byteLength(closeReason('é'.repeat(200)))).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
  });
});
