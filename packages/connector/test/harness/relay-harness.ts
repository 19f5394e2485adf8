/**
 * A test harness that plays the relay's side of the connector link: a real TLS 1.3 server that
 * requires client certificates, SPIFFE validation at the upgrade, and a `ws` server speaking the
 * link frames with the protocol codec. Tests script it frame by frame. Not a relay.
 */
import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { validateX509Svid, type BundleSet, type SpiffeId, type X509Svid } from '@switchboard/pki';
import {
  decodeFrame,
  encodeControl,
  encodeData,
  encodeWindow,
  FrameType,
  LINK_SUBPROTOCOL,
  type Frame,
  type HelloPayload,
} from '@switchboard/protocol';
import { WebSocketServer, type WebSocket } from 'ws';

export interface HarnessOptions {
  svid: X509Svid;
  bundlePem: string;
  bundles: BundleSet;
  /** upgradeStatus answers the upgrade with this HTTP status instead of accepting it (per connection number). */
  upgradeStatus?: (connection: number) => number | undefined;
  /** welcome decides the WELCOME for a HELLO; `undefined` sends none. Default: accept all, window 256 KiB. */
  welcome?: (hello: HelloPayload, connection: number) => { accepted: string[]; rejected?: { server: string; reason: string }[]; window?: number; version?: number } | undefined;
}

export const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** until polls `check` every 10 ms until it returns a truthy value or `ms` passes. */
export async function until<T>(check: () => T | undefined | false | null, ms = 5000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await wait(10);
  }
}

export class HarnessLink {
  readonly frames: Frame[] = [];
  readonly peer: SpiffeId;
  closed: { code: number; reason: string } | undefined;
  private readonly ws: WebSocket;
  private readonly waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private readonly closeWaiters: ((c: { code: number; reason: string }) => void)[] = [];

  constructor(ws: WebSocket, peer: SpiffeId, private readonly opts: HarnessOptions, private readonly connection: number) {
    this.ws = ws;
    this.peer = peer;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) throw new Error('harness: text frame from connector');
      const frame = decodeFrame(data);
      this.frames.push(frame);
      if (frame.type === FrameType.HELLO) this.onHello(frame.payload);
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        const w = this.waiters[i]!;
        if (w.pred(frame)) {
          this.waiters.splice(i, 1);
          w.resolve(frame);
        }
      }
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.closeWaiters) w(this.closed);
    });
  }

  private onHello(hello: HelloPayload): void {
    const w = this.opts.welcome ? this.opts.welcome(hello, this.connection) : { accepted: hello.servers };
    if (!w) return;
    this.send(
      encodeControl(FrameType.WELCOME, 0, {
        version: w.version ?? 1,
        linkId: `link-${this.connection}`,
        relay: 'spiffe://example.org/relay/test',
        accepted: w.accepted,
        rejected: w.rejected ?? [],
        window: w.window ?? 256 * 1024,
      }),
    );
  }

  /** frame waits for the first frame (already received or future) matching `pred`. */
  frame(pred: (f: Frame) => boolean, ms = 5000, what = 'frame'): Promise<Frame> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return this.nextFrame(pred, ms, what);
  }

  /** nextFrame waits for a future frame matching `pred`. */
  nextFrame(pred: (f: Frame) => boolean, ms = 5000, what = 'frame'): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`harness: timed out waiting for ${what}`)), ms);
      this.waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  /** json waits for the next DATA of `sessionId` that parses into a message matching `pred`. */
  async json(sessionId: number, pred: (m: Record<string, unknown>) => boolean = () => true, ms = 10_000): Promise<Record<string, unknown>> {
    const f = await this.frame(
      (x) => x.type === FrameType.DATA && x.sessionId === sessionId && pred(JSON.parse(x.data.toString()) as Record<string, unknown>),
      ms,
      `DATA on session ${sessionId}`,
    );
    return JSON.parse((f as { data: Buffer }).data.toString()) as Record<string, unknown>;
  }

  whenClosed(ms = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('harness: link did not close')), ms);
      this.closeWaiters.push((c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  }

  send(frame: Buffer): void {
    this.ws.send(frame);
  }
  sendText(text: string): void {
    this.ws.send(text);
  }
  open(sessionId: number, server: string, agent = 'spiffe://example.org/agent/a'): void {
    this.send(encodeControl(FrameType.OPEN, sessionId, { server, agent }));
  }
  data(sessionId: number, message: object | string): number {
    const json = typeof message === 'string' ? message : JSON.stringify(message);
    this.send(encodeData(sessionId, json));
    return Buffer.byteLength(json);
  }
  window(sessionId: number, increment: number): void {
    this.send(encodeWindow(sessionId, increment));
  }
  closeSession(sessionId: number, code = 1000, reason = 'agent left'): void {
    this.send(encodeControl(FrameType.CLOSE, sessionId, { code, reason }));
  }
  goaway(reason = 'relay restarting'): void {
    this.send(encodeControl(FrameType.GOAWAY, 0, { code: 1001, reason }));
  }
  close(code = 1000, reason = ''): void {
    this.ws.close(code, reason);
  }
  /** drop cuts the TCP connection without a close frame. */
  drop(): void {
    this.ws.terminate();
  }
  /** freeze stops reading the socket: no pongs, no frames — a dead relay. */
  freeze(): void {
    (this.ws as unknown as { _socket: TLSSocket })._socket.pause();
    (this.ws as unknown as { _receiver: { removeAllListeners(): void } })._receiver.removeAllListeners();
  }
}

export class HarnessRelay {
  readonly links: HarnessLink[] = [];
  connections = 0;
  readonly rejectedUpgrades: number[] = [];
  /** resumed tells, per upgrade, whether the TLS session was resumed. */
  readonly resumed: boolean[] = [];
  private readonly intermediates: X509Certificate[] = [];
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly linkWaiters: ((l: HarnessLink) => void)[] = [];

  private constructor(private readonly opts: HarnessOptions) {
    this.server = createServer({
      cert: opts.svid.certificatesPem(),
      key: opts.svid.privateKeyPem(),
      ca: opts.bundlePem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    this.wss = new WebSocketServer({
      noServer: true,
      handleProtocols: (protocols) => (protocols.has(LINK_SUBPROTOCOL) ? LINK_SUBPROTOCOL : false),
    });
    this.server.on('upgrade', (req, socket, head) => {
      const n = ++this.connections;
      const tls = socket as TLSSocket;
      let peer: SpiffeId;
      try {
        peer = this.validate(chainOf(tls.getPeerCertificate(true)));
      } catch {
        socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 10\r\n\r\nforbidden\n');
        return;
      }
      this.resumed.push(tls.isSessionReused());
      const status = this.opts.upgradeStatus?.(n);
      if (req.url !== '/v1/connector' || req.headers['sec-websocket-protocol'] !== LINK_SUBPROTOCOL) {
        socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 12\r\n\r\nbad request\n');
        return;
      }
      if (status !== undefined) {
        this.rejectedUpgrades.push(status);
        const body = status === 403 ? 'identity may not serve any server\n' : 'refused\n';
        socket.end(`HTTP/1.1 ${status} Refused\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        const link = new HarnessLink(ws, peer, this.opts, n);
        this.links.push(link);
        const waiters = this.linkWaiters.splice(0);
        for (const w of waiters) w(link);
      });
    });
  }

  // A resumed TLS 1.3 session carries only the leaf: offer the intermediates of earlier chains, as the relay does.
  private validate(chain: X509Certificate[]): SpiffeId {
    try {
      const { id, chain: path } = validateX509Svid(chain, this.opts.bundles);
      for (const c of path.slice(1, -1)) if (!this.intermediates.some((i) => i.fingerprint256 === c.fingerprint256)) this.intermediates.push(c);
      return id;
    } catch (err) {
      if (this.intermediates.length === 0) throw err;
      return validateX509Svid([...chain, ...this.intermediates], this.opts.bundles).id;
    }
  }

  static start(opts: HarnessOptions): Promise<HarnessRelay> {
    return HarnessRelay.startOn(0, opts);
  }

  static async startOn(port: number, opts: HarnessOptions): Promise<HarnessRelay> {
    const h = new HarnessRelay(opts);
    await new Promise<void>((resolve) => h.server.listen(port, '127.0.0.1', resolve));
    return h;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `wss://127.0.0.1:${this.port}`;
  }

  /** link waits for the n-th link (1-based) to be upgraded. */
  async link(n: number, ms = 8000): Promise<HarnessLink> {
    const end = Date.now() + ms;
    while (this.links.length < n) {
      const left = end - Date.now();
      if (left <= 0) throw new Error(`harness: link ${n} never came`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.linkWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.links[n - 1]!;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function chainOf(cert: DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  let c: DetailedPeerCertificate | undefined = cert;
  while (c?.raw && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
    c = c.issuerCertificate;
  }
  return out;
}
