// Cross-checks against implementations we did not write: OpenSSL's command-line verifier and
// certificate printer, and a real TLS 1.3 handshake through node:tls (OpenSSL's TLS stack).
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCA, type TestCA } from '../src/testing/index.js';
import { validateX509Svid, type X509Svid } from '../src/x509-svid.js';

const WAIT_MS = 5_000;

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function openssl(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { timeout: WAIT_MS }, (err, stdout, stderr) => {
      const exit = err ? (err as { code?: unknown }).code : 0;
      if (typeof exit !== 'number') {
        // openssl missing, killed or timed out: a "fails" test must not pass on that.
        reject(err);
        return;
      }
      resolve({ code: exit, stdout, stderr });
    });
  });
}

let tmp: string;
let ca: TestCA;
let other: TestCA; // another CA for the same trust domain name
let n = 0;

async function writeTmp(content: string): Promise<string> {
  const file = join(tmp, `f${n++}.pem`);
  await writeFile(file, content);
  return file;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'switchboard-pki-interop-'));
  [ca, other] = await Promise.all([createTestCA({ trustDomain: 'example.org' }), createTestCA({ trustDomain: 'example.org' })]);
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('openssl verify', () => {
  async function verify(bundlePem: string, svid: X509Svid, intermediates = svid.certificates.slice(1)): Promise<RunResult> {
    const bundle = await writeTmp(bundlePem);
    const leaf = await writeTmp(svid.leaf.toString());
    const args = ['verify', '-CAfile', bundle];
    if (intermediates.length > 0) args.push('-untrusted', await writeTmp(intermediates.map((c) => c.toString()).join('')));
    args.push(leaf);
    return openssl(args);
  }

  it('accepts an issued SVID with bundle.pem and the intermediate', async () => {
    const svid = await ca.issue('spiffe://example.org/agent/a');
    const r = await verify(ca.bundlePem, svid);
    expect(r.stdout.trim()).toMatch(/: OK$/);
    expect(r.code).toBe(0);
  });

  it('accepts it for the TLS client and server purposes too', async () => {
    const svid = await ca.issue('spiffe://example.org/agent/a');
    const bundle = await writeTmp(ca.bundlePem);
    const inter = await writeTmp(ca.ca.intermediateCertificate.toString());
    const leaf = await writeTmp(svid.leaf.toString());
    for (const purpose of ['sslclient', 'sslserver']) {
      const r = await openssl(['verify', '-purpose', purpose, '-CAfile', bundle, '-untrusted', inter, leaf]);
      expect([purpose, r.code, r.stdout.trim().endsWith(': OK')]).toEqual([purpose, 0, true]);
    }
  });

  it('fails against another CA\'s bundle', async () => {
    const svid = await ca.issue('spiffe://example.org/agent/a');
    const r = await verify(other.bundlePem, svid);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/unable to get local issuer certificate|certificate signature failure/);
  });

  it('fails without the intermediate', async () => {
    const svid = await ca.issue('spiffe://example.org/agent/a');
    const r = await verify(ca.bundlePem, svid, []);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/unable to get local issuer certificate/);
  });

  it('fails for an expired SVID', async () => {
    const svid = await ca.issue('spiffe://example.org/agent/a', { expired: true });
    const r = await verify(ca.bundlePem, svid);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/certificate has expired/);
  });
});

describe('openssl x509 -text', () => {
  it('shows the X509-SVID profile: critical digitalSignature, CA:FALSE, both EKUs, one SPIFFE URI', async () => {
    const svid = await ca.issue('spiffe://example.org/agent/support');
    const { code, stdout } = await openssl(['x509', '-in', await writeTmp(svid.leaf.toString()), '-noout', '-text']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\s*\n/);
    expect(stdout).not.toMatch(/Certificate Sign|CRL Sign/);
    expect(stdout).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(stdout).toMatch(/X509v3 Extended Key Usage:\s*\n\s+TLS Web Server Authentication, TLS Web Client Authentication\s*\n/);
    expect(stdout).toMatch(/X509v3 Subject Alternative Name:\s*\n\s+URI:spiffe:\/\/example\.org\/agent\/support\s*\n/);
    expect(stdout.match(/URI:/g)).toHaveLength(1);
    expect(stdout).toMatch(/Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
    expect(stdout).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
  });
});

// ---------------------------------------------------------------------------------------------
// Mutual TLS 1.3 between two issued identities.

interface Outcome {
  /** serverPeerId is what validateX509Svid made of the chain the server saw. */
  serverPeerId?: string;
  /** clientPeerId is what validateX509Svid made of the server's chain, on the client side. */
  clientPeerId?: string;
  /** reply is what the client read from the server (only sent after a full handshake). */
  reply?: string;
  /** serverError is what the server's tlsClientError event reported. */
  serverError?: NodeJS.ErrnoException;
  /** serverVerifyError is the OpenSSL verify result of the client certificate, on the server. */
  serverVerifyError?: string;
  clientError?: NodeJS.ErrnoException;
  /** clientClosed is set once the client socket closed. */
  clientClosed?: boolean;
}

// peerChain rebuilds the chain the peer presented, leaf first, by walking `issuerCertificate` of
// getPeerCertificate(true). (Node quirk: that walk must come before getPeerX509Certificate(), which
// otherwise leaves the detailed certificate without its issuers.)
function peerChain(socket: tls.TLSSocket): X509Certificate[] {
  let cur = socket.getPeerCertificate(true);
  if (!cur.raw) return [];
  const chain = [new X509Certificate(cur.raw)];
  const seen = new Set(chain.map((c) => c.fingerprint256));
  while (cur.issuerCertificate && cur.issuerCertificate !== cur) {
    cur = cur.issuerCertificate;
    const cert = new X509Certificate(cur.raw);
    if (seen.has(cert.fingerprint256)) break;
    seen.add(cert.fingerprint256);
    chain.push(cert);
  }
  // The leaf Node hands out directly is the one at the head of the walked chain.
  if (socket.getPeerX509Certificate()?.fingerprint256 !== chain[0]?.fingerprint256) {
    throw new Error('peer leaf and walked chain disagree');
  }
  return chain;
}

async function mutualTls(server: { svid: X509Svid; ca: TestCA }, client: { svid: X509Svid; ca: TestCA }): Promise<Outcome> {
  const out: Outcome = {};
  const sockets = new Set<tls.TLSSocket>();
  const srv = tls.createServer({
    key: server.svid.privateKeyPem(),
    cert: server.svid.certificatesPem(),
    ca: server.ca.bundlePem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  });
  let serverDone!: () => void;
  const serverSettled = new Promise<void>((resolve) => {
    serverDone = resolve;
  });
  srv.on('secureConnection', (socket) => {
    sockets.add(socket);
    try {
      out.serverPeerId = validateX509Svid(peerChain(socket), server.ca.bundles).id.toString();
      socket.end('hello\n');
    } catch (err) {
      out.serverError = err as NodeJS.ErrnoException;
      socket.destroy();
    }
    serverDone();
  });
  srv.on('tlsClientError', (err, socket) => {
    sockets.add(socket);
    out.serverError = err as NodeJS.ErrnoException;
    // With rejectUnauthorized, node:tls destroys a TLS 1.3 socket whose client certificate failed
    // verification; the reason is kept in authorizationError.
    const reason = socket.authorizationError;
    if (reason !== undefined && reason !== null) out.serverVerifyError = String(reason);
    serverDone();
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = srv.address() as AddressInfo;

  const clientSettled = new Promise<void>((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      key: client.svid.privateKeyPem(),
      cert: client.svid.certificatesPem(),
      ca: client.ca.bundlePem,
      minVersion: 'TLSv1.3',
      // SPIFFE authenticates the server by its SPIFFE ID (checked below), not by a DNS name.
      checkServerIdentity: () => undefined,
    });
    sockets.add(socket);
    let data = '';
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => {
      try {
        out.clientPeerId = validateX509Svid(peerChain(socket), client.ca.bundles).id.toString();
      } catch (err) {
        out.clientError = err as NodeJS.ErrnoException;
        socket.destroy();
      }
    });
    socket.on('data', (d: string) => {
      data += d;
    });
    socket.on('end', () => {
      out.reply = data;
    });
    socket.on('error', (err) => {
      out.clientError ??= err;
    });
    socket.on('close', () => {
      out.clientClosed = true;
      resolve();
    });
  });

  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), WAIT_MS);
  });
  try {
    const r = await Promise.race([Promise.all([serverSettled, clientSettled]), timeout]);
    if (r === 'timeout') throw new Error(`mutual TLS did not settle within ${WAIT_MS} ms: ${JSON.stringify(out)}`);
  } finally {
    clearTimeout(timer);
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  }
  return out;
}

describe('mutual TLS 1.3 with node:tls', () => {
  const SERVER_ID = 'spiffe://example.org/relay/r1';
  const CLIENT_ID = 'spiffe://example.org/agent/support';
  let serverSvid: X509Svid;

  beforeAll(async () => {
    serverSvid = await ca.issue(SERVER_ID);
  });

  it('succeeds between two issued identities, and each side validates the other\'s SPIFFE ID', async () => {
    const client = await ca.issue(CLIENT_ID);
    const out = await mutualTls({ svid: serverSvid, ca }, { svid: client, ca });
    expect(out.serverError).toBeUndefined();
    expect(out.clientError).toBeUndefined();
    expect(out.serverPeerId).toBe(CLIENT_ID);
    expect(out.clientPeerId).toBe(SERVER_ID);
    expect(out.reply).toBe('hello\n');
  });

  it('the server\'s view of the peer chain is leaf, intermediate, root', async () => {
    const client = await ca.issue(CLIENT_ID);
    const srv = tls.createServer({
      key: serverSvid.privateKeyPem(),
      cert: serverSvid.certificatesPem(),
      ca: ca.bundlePem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    let seen: string[] = [];
    let protocol: string | null = null;
    srv.on('secureConnection', (s) => {
      seen = peerChain(s).map((c) => c.fingerprint256);
      protocol = s.getProtocol();
      s.end();
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
    const { port } = srv.address() as AddressInfo;
    let timer: NodeJS.Timeout | undefined;
    let socket: tls.TLSSocket | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve, reject) => {
          socket = tls.connect({
            host: '127.0.0.1',
            port,
            key: client.privateKeyPem(),
            cert: client.certificatesPem(),
            ca: ca.bundlePem,
            checkServerIdentity: () => undefined,
          });
          socket.on('error', reject);
          socket.on('close', () => resolve());
          socket.resume();
        }),
        new Promise<void>((_, reject) => {
          timer = setTimeout(() => reject(new Error('timeout')), WAIT_MS);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      socket?.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
    expect(protocol).toBe('TLSv1.3');
    expect(seen).toEqual([client.leaf, ca.ca.intermediateCertificate, ca.ca.rootCertificate].map((c) => c.fingerprint256));
  });

  it('fails for an expired client identity: the server refuses it in the handshake', async () => {
    const client = await ca.issue(CLIENT_ID, { expired: true });
    const out = await mutualTls({ svid: serverSvid, ca }, { svid: client, ca });
    expect(out.serverPeerId).toBeUndefined();
    expect(out.serverError).toBeInstanceOf(Error);
    expect(out.serverVerifyError).toBe('CERT_HAS_EXPIRED');
    // The client is cut off: it never gets the reply a full handshake would bring.
    expect(out.clientClosed).toBe(true);
    expect(out.reply ?? '').toBe('');
  });

  it('fails for a client from another CA: the server cannot chain it to its bundle', async () => {
    const client = await other.issue(CLIENT_ID);
    const out = await mutualTls({ svid: serverSvid, ca }, { svid: client, ca });
    expect(out.serverPeerId).toBeUndefined();
    expect(out.serverError).toBeInstanceOf(Error);
    expect(out.serverVerifyError).toMatch(/^(UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_SIGNATURE_FAILURE)$/);
    expect(out.clientClosed).toBe(true);
    expect(out.reply ?? '').toBe('');
  });

  it('fails when the client trusts another CA: the client refuses the server', async () => {
    const client = await other.issue(CLIENT_ID);
    const out = await mutualTls({ svid: serverSvid, ca }, { svid: client, ca: other });
    expect(out.clientPeerId).toBeUndefined();
    expect(out.serverPeerId).toBeUndefined();
    expect(out.reply ?? '').toBe('');
    expect(out.clientError?.code).toMatch(/^(UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_SIGNATURE_FAILURE)$/);
    // The client's alert reaches the server as a handshake error.
    expect(out.serverError).toBeInstanceOf(Error);
  });
});
