/** LinkStatus describes the connector's link to one relay, for `links()`, `/readyz` and `/metrics`. */
export interface LinkStatus {
  /** relay is the relay's base URL as configured. */
  readonly relay: string;
  readonly state: 'connecting' | 'handshaking' | 'up' | 'draining' | 'backoff' | 'stopped';
  readonly linkId: string | undefined;
  /** relayId is the SPIFFE ID the relay reported in WELCOME. */
  readonly relayId: string | undefined;
  readonly accepted: readonly string[];
  readonly rejected: readonly { server: string; reason: string }[];
  /** sessions counts open sessions on this relay's links (the current one and any draining one). */
  readonly sessions: number;
  /** reconnects counts links to this relay that ended and were redialed. */
  readonly reconnects: number;
  readonly lastError: string | undefined;
  readonly upSince: Date | undefined;
}
