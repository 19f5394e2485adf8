import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect, createSecureContext, type ConnectionOptions, type DetailedPeerCertificate, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import { BundleSet, validateX509Svid, type IdMatcher, type Identity, type SpiffeId } from '@switchboard/pki';
import { relayIdFor } from './relay-id.js';

const MAX_CHAIN = 8;
/** How long to hold the upgrade request for the relay's verdict on our certificate when it sends no session ticket. */
const VERDICT_WAIT_MS = 250;

/** UntrustedRelay makes the error a caller reports when the relay's certificate is not acceptable. */
export type UntrustedRelay = (message: string, cause?: unknown) => Error;

/**
 * RelayTls is the client side of mutual TLS to a relay for one identity: a secure context built
 * once (our SVID chain and key, our bundle as CA, TLS 1.3 only) and a `checkServerIdentity` that
 * replaces Node's hostname check, which does not apply to SPIFFE certificates, with X509-SVID
 * validation plus an authorizer: the relay rule (the configured `relayId`, else
 * `spiffe://<our trust domain>/relay/*`; see relay-id.ts).
 */
export class RelayTls {
  readonly identity: Identity;
  readonly secureContext: SecureContext;
  private readonly bundles: BundleSet;
  /** relayId is the rule the relay's SPIFFE ID must match. */
  readonly relayId: IdMatcher;
  private readonly configured: boolean;
  private readonly resumption: boolean;
  private readonly untrusted: UntrustedRelay;
  private readonly sessions = new Map<string, { session: Buffer; until: number; relayNotAfter: number }>();
  // Relays (host|port) that accepted this certificate once: later connections skip the verdict wait.
  private readonly accepted = new Set<string>();

  /** Throws `TypeError` when `relayId` lies outside our trust domain. */
  constructor(identity: Identity, options: { relayId?: IdMatcher | SpiffeId | string | undefined; resumption?: boolean; untrusted: UntrustedRelay }) {
    this.identity = identity;
    this.untrusted = options.untrusted;
    this.relayId = relayIdFor(options.relayId, identity.svid.id.trustDomain);
    this.configured = options.relayId !== undefined;
    this.resumption = options.resumption ?? true;
    this.bundles = new BundleSet([identity.bundle]);
    this.secureContext = createSecureContext({
      cert: identity.svid.certificatesPem(),
      key: identity.svid.privateKeyPem(),
      ca: identity.bundle.toPem(),
      minVersion: 'TLSv1.3',
    });
  }

  /** checkServerIdentity validates the relay's X509-SVID; returns an error to fail the handshake (fail closed). */
  readonly checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined =>
    checkRelayCertificate(cert, this.bundles, this.relayId, this.configured, this.untrusted);

  /**
   * createConnection is handed to `ws` as its socket factory: every connection uses the one secure
   * context and our identity check; with resumption on, TLS sessions of verified relays are reused.
   */
  readonly createConnection = (options: ConnectionOptions & { host?: string; port?: number; path?: string | undefined }): TLSSocket => {
    options.path = undefined;
    if (!options.servername && options.servername !== '') options.servername = options.host && isIP(options.host) ? '' : options.host;
    options.secureContext = this.secureContext;
    options.checkServerIdentity = this.checkServerIdentity;
    options.minVersion = 'TLSv1.3';
    options.rejectUnauthorized = true;
    const key = `${options.host}|${options.port}|${options.servername}`;
    if (this.resumption) {
      const cached = this.sessions.get(key);
      if (cached && cached.until > Date.now()) options.session = cached.session;
      else this.sessions.delete(key);
    }
    const resumedFrom = options.session === undefined ? undefined : this.sessions.get(key);
    const socket = connect(options);
    // The peer's certificate is readable at the handshake only (OpenSSL lets go of it afterwards);
    // a resumed session has none of its own: its expiry is the one verified when it was cached.
    socket.once('secureConnect', () => {
      const peer = peerCertificateOf(socket);
      const notAfter = peer !== undefined ? Date.parse(peer.validTo) : socket.isSessionReused() ? resumedFrom?.relayNotAfter : undefined;
      if (notAfter !== undefined && Number.isFinite(notAfter)) relayExpiries.set(socket, notAfter);
    });
    const relay = `${options.host}|${options.port}`;
    if (!this.accepted.has(relay)) {
      holdUntilVerdict(socket);
      socket.once('session', () => {
        if (this.accepted.size >= 64) this.accepted.clear();
        this.accepted.add(relay);
      });
    }
    if (this.resumption) {
      // Node skips checkServerIdentity on a resumed session, so only sessions whose peer we verified
      // are cached, and never past the relay leaf's expiry.
      socket.on('session', (session: Buffer) => {
        const peer = peerCertificateOf(socket);
        if (!socket.authorized || !peer) return;
        if (this.sessions.size >= 64) this.sessions.clear();
        this.sessions.set(key, { session, until: Math.min(Date.parse(peer.validTo), Date.now() + 3_600_000), relayNotAfter: Date.parse(peer.validTo) });
      });
    }
    return socket;
  };
}

const relayExpiries = new WeakMap<TLSSocket, number>();
const peerCertificates = new WeakMap<TLSSocket, X509Certificate>();

// Node hands out the peer's certificate once: a second getPeerX509Certificate() on the same
// socket returns undefined. Every reader here goes through this cache.
function peerCertificateOf(socket: TLSSocket): X509Certificate | undefined {
  let peer = peerCertificates.get(socket);
  if (peer === undefined) {
    peer = socket.getPeerX509Certificate();
    if (peer !== undefined) peerCertificates.set(socket, peer);
  }
  return peer;
}

/**
 * relayCertificateExpiry is when the relay certificate a connection made by {@link RelayTls}
 * authenticated expires (ms since the epoch), or undefined before the handshake.
 */
export function relayCertificateExpiry(socket: TLSSocket): number | undefined {
  return relayExpiries.get(socket);
}

/**
 * checkRelayCertificate is the relay check of every dial: the X509-SVID rules against `bundles`,
 * then the relay rule. Returns the error to fail the handshake with, or undefined.
 */
export function checkRelayCertificate(cert: PeerCertificate, bundles: BundleSet, rule: IdMatcher, configured: boolean, untrusted: UntrustedRelay): Error | undefined {
  try {
    const chain = peerChain(cert as DetailedPeerCertificate);
    const { id } = validateX509Svid(chain, bundles);
    if (!rule.matches(id)) {
      const which = configured ? 'relayId' : "the default relay rule; set relayId to the relay's SPIFFE ID";
      return untrusted(`relay presented ${id.toString()}, expected ${rule.pattern} (${which})`);
    }
    return undefined;
  } catch (err) {
    return untrusted(`relay certificate rejected: ${(err as Error).message}`, err);
  }
}

/**
 * holdUntilVerdict keeps the HTTP upgrade request in the socket until the relay has judged our
 * certificate. In TLS 1.3 the client finishes its handshake before the server has checked the
 * client certificate; a request written at once races the server's alert, and the server, closing
 * with our unread request in its buffer, sends a TCP reset that destroys the alert: the client sees
 * ECONNRESET instead of "unknown ca". A NewSessionTicket (the 'session' event) is only sent after
 * the server accepted us, and an alert now arrives cleanly. This costs one round trip, so it is
 * only done until a relay has accepted this certificate once; relays that send no tickets cost
 * {@link VERDICT_WAIT_MS} per connection until then.
 */
function holdUntilVerdict(socket: TLSSocket): void {
  socket.cork();
  let timer: NodeJS.Timeout | undefined;
  let held = true;
  let handshaken = false;
  const release = (): void => {
    if (!held) return;
    held = false;
    clearTimeout(timer);
    socket.off('session', release);
    socket.off('end', onEnd);
    // Not from inside the 'session' callback: OpenSSL is mid-read there and the write would stall.
    setImmediate(uncork, socket);
  };
  // Node's TLS server (and others) reject a client certificate by closing right after the
  // handshake, without an alert: an end of stream while we still wait for the verdict is that.
  const onEnd = (): void => {
    if (!held || !handshaken) return;
    const err = new CertificateVerdictError();
    // Emitted synchronously, ahead of the HTTP client's own 'end' handler, so the request fails
    // with this error rather than a generic "socket hang up" (destroy(err) emits a tick later).
    if (socket.listenerCount('error') > 0) {
      socket.emit('error', err);
      socket.destroy();
    } else socket.destroy(err);
  };
  socket.on('session', release);
  socket.once('end', onEnd);
  socket.once('secureConnect', () => {
    handshaken = true;
    if (socket.getProtocol() !== 'TLSv1.3' || socket.isSessionReused()) release();
    else timer = setTimeout(release, VERDICT_WAIT_MS);
  });
  socket.once('close', release);
}

function uncork(socket: TLSSocket): void {
  if (!socket.destroyed) socket.uncork();
}

/**
 * CertificateVerdictError is a relay that closed the connection after the TLS handshake, before
 * accepting our certificate (no session ticket, no HTTP answer): it refused our certificate.
 */
export class CertificateVerdictError extends Error {
  readonly code = 'ERR_SWITCHBOARD_CERT_REFUSED';
  constructor() {
    super('the relay closed the connection right after the TLS handshake, before accepting our certificate');
    this.name = 'CertificateVerdictError';
  }
}

function peerChain(cert: DetailedPeerCertificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let c: DetailedPeerCertificate | undefined = cert;
  while (c && c.raw && chain.length < MAX_CHAIN && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    chain.push(new X509Certificate(c.raw));
    c = c.issuerCertificate;
  }
  return chain;
}
