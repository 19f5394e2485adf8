import { describe, expect, it } from 'vitest';
import { loopbackRefusal } from '../src/index.js';

describe('loopbackRefusal', () => {
  it('serves a loopback Host on the port, with no Origin or a loopback one', () => {
    for (const host of ['127.0.0.1:9464', 'localhost:9464', 'LOCALHOST:9464', '[::1]:9464']) expect(loopbackRefusal(host, undefined, 9464), host).toBeUndefined();
    expect(loopbackRefusal('127.0.0.1:9464', 'http://localhost:9464', 9464)).toBeUndefined();
    expect(loopbackRefusal('127.0.0.2:9464', undefined, 9464, ['127.0.0.2'])).toBeUndefined();
    expect(loopbackRefusal('[::1]:9464', undefined, 9464, ['::1'])).toBeUndefined();
  });

  it('refuses a rebinding name, another port, a missing Host, and a foreign Origin', () => {
    expect(loopbackRefusal('attacker.example:9464', undefined, 9464)).toBe('host');
    expect(loopbackRefusal('127.0.0.1:80', undefined, 9464)).toBe('host');
    expect(loopbackRefusal('127.0.0.1', undefined, 9464)).toBe('host');
    expect(loopbackRefusal(undefined, undefined, 9464)).toBe('host');
    expect(loopbackRefusal('127.0.0.1:9464', 'http://attacker.example', 9464)).toBe('origin');
    expect(loopbackRefusal('127.0.0.1:9464', 'https://127.0.0.1:9464', 9464)).toBe('origin');
    expect(loopbackRefusal('127.0.0.1:9464', 'null', 9464)).toBe('origin');
  });
});
