import { describe, expect, it } from 'vitest';
import { ResumeTokenError, decodeResumeToken, encodeResumeToken, parseResumeHeader, readSessionInfo } from '../src/index.js';

const TOKEN = { connector: 'spiffe://example.org/connector/crm', server: 'crm', id: 'A'.repeat(22), secret: 'b'.repeat(43) };
const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

describe('resume tokens', () => {
  it('round-trip through base64url JSON', () => {
    const text = encodeResumeToken(TOKEN);
    expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeResumeToken(text)).toEqual(TOKEN);
  });

  it.each<[string, string, string]>([
    ['empty', '', 'the token is not base64url of at most 4096 characters'],
    ['not base64url', 'a+b/c', 'the token is not base64url of at most 4096 characters'],
    ['too long', 'A'.repeat(4097), 'the token is not base64url of at most 4096 characters'],
    ['not JSON', Buffer.from('{nope').toString('base64url'), 'the token does not hold JSON'],
    ['an array', b64([1]), 'the token does not hold an object'],
    ['another version', b64({ v: 2, c: TOKEN.connector, s: 'crm', i: TOKEN.id, k: TOKEN.secret }), 'unknown token version'],
    ['no connector', b64({ v: 1, c: 'crm', s: 'crm', i: TOKEN.id, k: TOKEN.secret }), 'the token names no connector'],
    ['no server', b64({ v: 1, c: TOKEN.connector, s: '', i: TOKEN.id, k: TOKEN.secret }), 'the token names no server'],
    ['a short secret', b64({ v: 1, c: TOKEN.connector, s: 'crm', i: TOKEN.id, k: 'short' }), 'the token carries no well-formed credential'],
  ])('%s is refused', (_label, text, message) => {
    expect(() => decodeResumeToken(text)).toThrow(new ResumeTokenError(message));
  });

  it('the upgrade header: absent or another version is no resumption, v1 an offer, v1 <token> a resume', () => {
    expect(parseResumeHeader(undefined)).toBeUndefined();
    expect(parseResumeHeader('v2 x')).toBeUndefined();
    expect(parseResumeHeader(['v1'])).toBeUndefined();
    expect(parseResumeHeader('v1')).toEqual({ offer: true });
    expect(parseResumeHeader(` v1  ${encodeResumeToken(TOKEN)} `)).toEqual({ offer: true, token: TOKEN });
    expect(() => parseResumeHeader('v1 a b')).toThrow('resume: the header holds more than a version and a token');
  });

  it('the session message is read strictly', () => {
    expect(readSessionInfo({ type: 'session', resumed: false, token: 't', graceMs: 30000 })).toEqual({ type: 'session', resumed: false, token: 't', graceMs: 30000 });
    expect(readSessionInfo({ type: 'session', resumed: 'no', token: 't', graceMs: 1 })).toBeUndefined();
    expect(readSessionInfo({ type: 'session', resumed: true, token: 't', graceMs: -1 })).toBeUndefined();
    expect(readSessionInfo({ type: 'reauth_result', ok: true })).toBeUndefined();
    expect(readSessionInfo(null)).toBeUndefined();
  });
});
