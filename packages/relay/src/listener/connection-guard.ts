import { performance } from 'node:perf_hooks';
import type { Server as HttpsServer } from 'node:https';
import { isIPv4, isIPv6 } from 'node:net';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '@switchboard/common';
import type { GuardDrop } from '../metrics.js';

/** ConnectionLimits are the caps the guard keeps on the public listener (relay.yaml `limits`). */
export interface ConnectionLimits {
  /** maxConnections bounds open TCP connections in total (in handshake or not). */
  maxConnections: number;
  /** maxConnectionsPerSource bounds open connections from one source (0: no cap). */
  maxConnectionsPerSource: number;
  /** maxHandshakes bounds connections still in the TLS handshake; a new one drops the oldest. */
  maxHandshakes: number;
  /** maxHandshakesPerSource bounds one source's connections in the TLS handshake (0: no cap). */
  maxHandshakesPerSource: number;
  /** upgradeTimeoutMs bounds the time from the end of the handshake to the first HTTP request. */
  upgradeTimeoutMs: number;
}

/** GuardCounters is where the guard reports (RelayMetrics implements it). */
export interface GuardCounters {
  readonly connectionsDropped: Record<GuardDrop, number>;
  /** handshake hears how long each completed TLS handshake took, TCP accept to secure. */
  handshake?(seconds: number): void;
}

interface Tracked {
  readonly key: string;
  readonly socket: Socket;
  readonly source: string;
  /** since is when the TCP connection was accepted (performance.now()). */
  readonly since: number;
  handshaking: boolean;
  timer?: NodeJS.Timeout | undefined;
}

/**
 * sourceOf is the key a connection is counted under: the IPv4 address (an IPv4-mapped IPv6
 * address counts as its IPv4 address), or the /64 prefix of an IPv6 address — one host or
 * customer typically holds a whole /64, so counting single addresses would not bound it.
 */
export function sourceOf(address: string | undefined): string {
  if (address === undefined || address === '') return '?';
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) return address.slice(7);
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/**
 * ConnectionGuard keeps the public listener usable under a flood. It sees every TCP connection
 * before TLS starts and closes, at once and without an answer:
 *
 * - a connection past `maxConnections`, or past its source's `maxConnectionsPerSource`;
 * - a connection past its source's `maxHandshakesPerSource` connections still in the handshake;
 * - when `maxHandshakes` connections are in the handshake, the **oldest** of them (not the new
 *   one): a legitimate handshake takes milliseconds, so a slow flood cannot keep newcomers out;
 * - a connection whose handshake finished but which sent no HTTP request (an upgrade or
 *   `/v1/…`) within `upgradeTimeoutMs`.
 *
 * The TLS handshake itself is bounded by the server's `handshakeTimeout`.
 */
export class ConnectionGuard {
  private readonly limits: ConnectionLimits;
  private readonly counters: GuardCounters;
  private readonly logger: Logger;
  /** byKey maps `address|port` (the same on the raw and the TLS socket) to its connection. */
  private readonly byKey = new Map<string, Tracked>();
  /** handshaking holds the connections in the handshake, oldest first (Map keeps insertion order). */
  private readonly handshaking = new Map<string, Tracked>();
  private readonly perSource = new Map<string, { open: number; handshaking: number }>();
  private warned = 0;

  constructor(limits: ConnectionLimits, counters: GuardCounters, logger: Logger) {
    this.limits = limits;
    this.counters = counters;
    this.logger = logger;
  }

  /** open is the number of TCP connections the guard tracks now. */
  get open(): number {
    return this.byKey.size;
  }

  /** inHandshake is the number of connections still in the TLS handshake. */
  get inHandshake(): number {
    return this.handshaking.size;
  }

  /** attach installs the guard on `server` (before its own TLS listener). */
  attach(server: HttpsServer): void {
    server.prependListener('connection', (socket: Socket) => this.admit(socket));
    server.prependListener('secureConnection', (socket: TLSSocket) => this.secured(socket));
    server.prependListener('request', (req: { socket: Socket }) => this.requested(req.socket));
    server.prependListener('upgrade', (req: { socket: Socket }) => this.requested(req.socket));
  }

  private admit(socket: Socket): void {
    const key = `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? '?'}`;
    const source = sourceOf(socket.remoteAddress);
    const counts = this.perSource.get(source) ?? { open: 0, handshaking: 0 };
    const drop =
      this.byKey.size >= this.limits.maxConnections
        ? 'max_connections'
        : this.limits.maxConnectionsPerSource > 0 && counts.open >= this.limits.maxConnectionsPerSource
          ? 'source_connections'
          : this.limits.maxHandshakesPerSource > 0 && counts.handshaking >= this.limits.maxHandshakesPerSource
            ? 'source_handshakes'
            : undefined;
    if (drop !== undefined) {
      this.dropped(drop, source);
      socket.destroy();
      return;
    }
    if (this.handshaking.size >= this.limits.maxHandshakes) {
      const oldest = this.handshaking.values().next().value;
      if (oldest !== undefined) {
        this.dropped('handshake_evicted', oldest.source);
        this.endHandshake(oldest);
        oldest.socket.destroy();
      }
    }
    const tracked: Tracked = { key, socket, source, since: performance.now(), handshaking: true };
    counts.open++;
    counts.handshaking++;
    this.perSource.set(source, counts);
    this.byKey.set(key, tracked);
    this.handshaking.set(key, tracked);
    socket.once('close', () => this.closed(tracked));
  }

  private secured(socket: TLSSocket): void {
    const tracked = this.byKey.get(`${socket.remoteAddress ?? '?'}|${socket.remotePort ?? '?'}`);
    if (tracked === undefined) return;
    this.counters.handshake?.((performance.now() - tracked.since) / 1000);
    this.endHandshake(tracked);
    tracked.timer = setTimeout(() => {
      tracked.timer = undefined;
      this.dropped('upgrade_timeout', tracked.source);
      socket.destroy();
    }, this.limits.upgradeTimeoutMs);
    tracked.timer.unref();
    (socket as TLSSocket & { [GUARDED]?: Tracked })[GUARDED] = tracked;
  }

  private requested(socket: Socket): void {
    const tracked = (socket as Socket & { [GUARDED]?: Tracked })[GUARDED];
    if (tracked?.timer === undefined) return;
    clearTimeout(tracked.timer);
    tracked.timer = undefined;
  }

  private endHandshake(tracked: Tracked): void {
    if (!tracked.handshaking) return;
    tracked.handshaking = false;
    if (this.handshaking.get(tracked.key) === tracked) this.handshaking.delete(tracked.key);
    const counts = this.perSource.get(tracked.source);
    if (counts !== undefined) counts.handshaking--;
  }

  private closed(tracked: Tracked): void {
    this.endHandshake(tracked);
    if (tracked.timer !== undefined) clearTimeout(tracked.timer);
    if (this.byKey.get(tracked.key) === tracked) this.byKey.delete(tracked.key);
    const counts = this.perSource.get(tracked.source);
    if (counts === undefined) return;
    counts.open--;
    if (counts.open <= 0) this.perSource.delete(tracked.source);
  }

  private dropped(why: GuardDrop, source: string): void {
    this.counters.connectionsDropped[why]++;
    // A flood must not flood the log too: the first few drops, then one line per 1000.
    this.warned++;
    if (this.warned <= 5 || this.warned % 1000 === 0) {
      this.logger.warn({ reason: why, source, dropped: this.warned }, 'connection dropped by the listener limits');
    }
  }
}

const GUARDED = Symbol('switchboard.connectionGuard');
