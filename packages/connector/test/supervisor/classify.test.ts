import { describe, expect, it } from 'vitest';
import {
  classify,
  ConfigError,
  HandshakeError,
  IdentityError,
  IdentityExpiredError,
  IdentityRejectedError,
  LinkLostError,
  NoServersAcceptedError,
  ProtocolError,
  ProtocolVersionError,
  RelayUnreachableError,
  RelayUntrustedError,
  BackendError,
} from '../../src/index.js';

function nodeError(code: string, message = code): Error {
  return Object.assign(new Error(message), { code });
}

describe('classify', () => {
  it.each([
    ['HTTP 403 on upgrade', new IdentityRejectedError('403', { status: 403 }), 'exit', 'reconnect'],
    ['TLS alert unknown ca (raw)', nodeError('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'), 'exit', 'reconnect'],
    ['TLS alert bad certificate (raw)', nodeError('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE'), 'exit', 'reconnect'],
    ['TLS alert certificate expired (raw)', nodeError('ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED'), 'exit', 'reconnect'],
    ['TLS alert certificate required (raw)', nodeError('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), 'exit', 'reconnect'],
    ['relay closed after handshake (raw)', nodeError('ERR_SWITCHBOARD_CERT_REFUSED'), 'exit', 'reconnect'],
    ['relay not trusted', new RelayUntrustedError('x'), 'exit', 'reconnect'],
    ['relay chain fails OpenSSL (raw)', nodeError('UNABLE_TO_GET_ISSUER_CERT_LOCALLY'), 'exit', 'reconnect'],
    ['own certificate expired', new IdentityExpiredError('x'), 'exit', 'reconnect'],
    ['identity files unreadable', new IdentityError('x'), 'exit', 'reconnect'],
    ['no server accepted', new NoServersAcceptedError([]), 'exit', 'reconnect'],
    ['unsupported protocol version', new ProtocolVersionError('x'), 'exit', 'reconnect'],
    ['invalid config', new ConfigError('servers', 'x'), 'exit', 'exit'],
    ['connection refused (raw)', nodeError('ECONNREFUSED'), 'reconnect', 'reconnect'],
    ['DNS failure (raw)', nodeError('ENOTFOUND'), 'reconnect', 'reconnect'],
    ['reset (raw)', nodeError('ECONNRESET'), 'reconnect', 'reconnect'],
    ['relay unreachable', new RelayUnreachableError('x'), 'reconnect', 'reconnect'],
    ['HTTP 503 on upgrade', new HandshakeError('503', { status: 503 }), 'reconnect', 'reconnect'],
    ['link lost', new LinkLostError('x'), 'reconnect', 'reconnect'],
    ['protocol error', new ProtocolError('x'), 'reconnect', 'reconnect'],
    ['backend failure', new BackendError('x'), 'reconnect', 'reconnect'],
    ['unknown error', new Error('something'), 'reconnect', 'reconnect'],
    ['no error (clean close)', undefined, 'reconnect', 'reconnect'],
  ])('%s → %s at first start, %s once established', (_name, err, first, later) => {
    expect(classify(err, { established: false }).action).toBe(first);
    expect(classify(err, { established: true }).action).toBe(later);
  });

  it('gives the reason in words', () => {
    const d = classify(new IdentityRejectedError('wss://r refused the link (HTTP 403: nope)', { status: 403 }), { established: false });
    expect(d).toEqual({ action: 'exit', reason: 'link: wss://r refused the link (HTTP 403: nope)' });
  });
});
