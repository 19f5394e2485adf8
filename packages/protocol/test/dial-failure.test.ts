import { describe, expect, it } from 'vitest';
import { classifyDialFailure } from '../src/index.js';

const err = (code: string | undefined, message = 'boom'): Error => Object.assign(new Error(message), code === undefined ? {} : { code });

describe('classifyDialFailure', () => {
  it.each<[string, Error, ReturnType<typeof classifyDialFailure>]>([
    ['a close right after TLS', err('ERR_SWITCHBOARD_CERT_REFUSED'), { kind: 'refused-after-handshake' }],
    ['a TLS 1.3 unknown-ca alert', err('ERR_SSL_TLSV13_ALERT_UNKNOWN_CA'), { kind: 'identity-alert', code: 'ERR_SSL_TLSV13_ALERT_UNKNOWN_CA', alert: 'unknown ca' }],
    ['a certificate-required alert', err('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), { kind: 'identity-alert', code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', alert: 'certificate required' }],
    ['an expired relay certificate', err('CERT_HAS_EXPIRED'), { kind: 'relay-untrusted', code: 'CERT_HAS_EXPIRED' }],
    ['a relay name mismatch', err('ERR_TLS_CERT_ALTNAME_INVALID'), { kind: 'relay-untrusted', code: 'ERR_TLS_CERT_ALTNAME_INVALID' }],
    ['a refused connection', err('ECONNREFUSED'), { kind: 'unreachable', code: 'ECONNREFUSED' }],
    ['a WebSocket handshake timeout', err(undefined, 'Opening handshake has timed out'), { kind: 'timeout' }],
    ['another TLS failure', err('ERR_SSL_WRONG_VERSION_NUMBER'), { kind: 'tls', code: 'ERR_SSL_WRONG_VERSION_NUMBER' }],
    ['anything else', err(undefined, 'Unexpected server response: 500'), { kind: 'other', message: 'Unexpected server response: 500' }],
  ])('%s', (_label, e, want) => {
    expect(classifyDialFailure(e)).toEqual(want);
  });

  it('takes a value that is not an Error', () => {
    expect(classifyDialFailure('nope')).toEqual({ kind: 'other', message: 'nope' });
  });
});
