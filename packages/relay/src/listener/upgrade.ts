import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { PkiError } from '@switchboard/pki';
import { AGENT_SUBPROTOCOL, CloseCode, LINK_SUBPROTOCOL, REAUTH_HEADER, RESUME_HEADER, ResumeTokenError, isServerName, parseResumeHeader, type ResumeToken } from '@switchboard/protocol';
import type { Logger } from '@switchboard/common';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AuditSink } from '../audit/sink.js';
import type { PeerAuthenticator, PeerIdentity } from '../auth/peer-auth.js';
import type { RelayLimits } from '../config/limits.js';
import type { ConnectorLink } from '../link/connector-link.js';
import type { Registry } from '../link/registry.js';
import type { RelayMetrics, UpgradeRefusal } from '../metrics.js';
import type { PolicyScope } from '../policy/scope.js';
import type { PolicyStore } from '../policy/store.js';
import { refuseUpgrade } from './refuse.js';

const AGENT_PREFIX = '/v1/agent/';
const CONNECTOR_PATH = '/v1/connector';

function offered(req: IncomingMessage): string[] {
  const h = req.headers['sec-websocket-protocol'];
  if (typeof h !== 'string') return [];
  return h.split(',').map((p) => p.trim());
}

function pickAgent(protocols: Set<string>): string | false {
  return protocols.has(AGENT_SUBPROTOCOL) ? AGENT_SUBPROTOCOL : false;
}

function pickLink(protocols: Set<string>): string | false {
  return protocols.has(LINK_SUBPROTOCOL) ? LINK_SUBPROTOCOL : false;
}

/** UpgradeContext is what the router reads to authorize an upgrade. */
export interface UpgradeContext {
  readonly limits: Pick<RelayLimits, 'maxMessageBytes' | 'maxServerMessageBytes' | 'maxSessionsPerLink'>;
  readonly policy: PolicyStore;
  readonly registry: Registry<ConnectorLink>;
  readonly audit: AuditSink;
  readonly metrics: RelayMetrics;
  readonly logger: Logger;
}

/** AcceptedSession is an agent upgrade the router authorized: its socket, identity, server, scope and link. */
export interface AcceptedSession {
  readonly ws: WebSocket;
  readonly socket: Duplex;
  readonly agent: PeerIdentity;
  readonly server: string;
  readonly scope: PolicyScope;
  readonly link: ConnectorLink;
  /** resume is set when the agent offered resumption (`token`: it resumes a session). */
  readonly resume?: { readonly offer: true; readonly token?: ResumeToken };
}

/** UpgradeRouterHooks are what the relay does with what the router accepts. */
export interface UpgradeRouterHooks {
  /** closing is true once shutdown began: new upgrades are refused with 503. */
  closing(): boolean;
  /** startSession splices an accepted agent WebSocket onto its connector link. */
  startSession(accepted: AcceptedSession): void;
  /** startLink serves an accepted connector WebSocket. */
  startLink(ws: WebSocket, socket: Duplex, peer: PeerIdentity): void;
}

/**
 * UpgradeRouter authorizes every WebSocket upgrade on the main listener: it authenticates the
 * peer's X509-SVID, then routes by path — `/v1/agent/<server>` (subprotocol `mcp`, policy, a
 * connector online) or `/v1/connector` (subprotocol `switchboard.v1`, listed as a connector).
 * Refusals are plain HTTP responses before the upgrade; see docs/errors.md.
 */
export class UpgradeRouter {
  private readonly ctx: UpgradeContext;
  private readonly auth: PeerAuthenticator;
  private readonly hooks: UpgradeRouterHooks;
  private readonly agentServer: WebSocketServer;
  private readonly linkServer: WebSocketServer;

  constructor(ctx: UpgradeContext, auth: PeerAuthenticator, hooks: UpgradeRouterHooks) {
    this.ctx = ctx;
    this.auth = auth;
    this.hooks = hooks;
    const common = { noServer: true, perMessageDeflate: false, clientTracking: false, skipUTF8Validation: false } as const;
    this.agentServer = new WebSocketServer({ ...common, maxPayload: ctx.limits.maxMessageBytes, handleProtocols: pickAgent });
    // Tells an agent it may move the session to a renewed certificate (binary REAUTH, docs/protocol.md).
    this.agentServer.on('headers', (headers: string[]) => headers.push(`${REAUTH_HEADER}: v1`, `${RESUME_HEADER}: v1`));
    this.linkServer = new WebSocketServer({ ...common, maxPayload: ctx.limits.maxServerMessageBytes + 5, handleProtocols: pickLink });
  }

  /** handleUpgrade is the https server's `upgrade` listener. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    let peer: PeerIdentity;
    try {
      peer = this.auth.authenticate(socket as TLSSocket);
    } catch (err) {
      const rule = err instanceof PkiError ? `${err.code}: ${err.message}` : String(err);
      this.refuse(req, socket, path, 403, 'invalid_svid', 'the client certificate is not a valid X509-SVID', undefined, rule);
      return;
    }
    if (this.hooks.closing()) {
      this.refuse(req, socket, path, 503, 'shutting_down', 'the relay is shutting down', peer);
      return;
    }
    // Revoked identities (by SPIFFE ID or certificate serial) are refused on every endpoint, first.
    const revoked = this.ctx.policy.identity(peer).revoked;
    if (revoked !== undefined) {
      this.refuse(req, socket, path, 403, 'revoked', 'this identity has been revoked', peer, revoked.reason);
      return;
    }
    if (path === CONNECTOR_PATH) {
      this.connector(req, socket, head, path, peer);
    } else if (path.startsWith(AGENT_PREFIX)) {
      this.agent(req, socket, head, path, peer);
    } else {
      this.refuse(req, socket, path, 404, 'not_found', 'no such endpoint', peer);
    }
  }

  private agent(req: IncomingMessage, socket: Duplex, head: Buffer, path: string, peer: PeerIdentity): void {
    const server = path.slice(AGENT_PREFIX.length);
    if (!isServerName(server)) {
      this.refuse(req, socket, path, 400, 'bad_request', 'malformed server name in the path', peer);
      return;
    }
    if (!offered(req).includes(AGENT_SUBPROTOCOL)) {
      this.refuse(req, socket, path, 400, 'bad_subprotocol', `the WebSocket subprotocol must be "${AGENT_SUBPROTOCOL}"`, peer);
      return;
    }
    let resume: AcceptedSession['resume'];
    try {
      resume = parseResumeHeader(req.headers[RESUME_HEADER.toLowerCase()]);
    } catch (err) {
      this.refuse(req, socket, path, 400, 'bad_request', 'malformed resume token', peer, err instanceof ResumeTokenError ? err.message : String(err));
      return;
    }
    if (resume?.token !== undefined && resume.token.server !== server) {
      this.refuse(req, socket, path, 400, 'bad_request', 'the resume token is for another server', peer);
      return;
    }
    // A resume is authorized like a new session: revocation (above), then the policy.
    const scope = this.ctx.policy.scope(peer, server);
    if (!scope.session.allow) {
      // An undeclared server and a forbidden one get the same answer on purpose.
      this.refuse(req, socket, path, 403, 'forbidden', 'this identity may not use this server', peer, scope.session.reason);
      return;
    }
    const token = resume?.token;
    const link = token === undefined ? this.ctx.registry.pick(server, this.ctx.limits.maxSessionsPerLink) : this.linkOf(server, token.connector);
    if (link === undefined && token !== undefined) {
      this.refuse(req, socket, path, 409, 'resume_unavailable', 'the connector holding this session is not linked to this relay', peer);
      return;
    }
    if (link === undefined) {
      this.refuse(req, socket, path, 503, 'no_connector', 'no connector serves this server right now', peer);
      return;
    }
    this.agentServer.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      if (!link.accepting) {
        ws.close(CloseCode.NO_CONNECTOR, 'no connector serves this server right now');
        return;
      }
      this.hooks.startSession({ ws, socket, agent: peer, server, scope, link, ...(resume !== undefined ? { resume } : {}) });
    });
  }

  /** linkOf is an accepting link of `connector` serving `server`: where a resumed session lives. */
  private linkOf(server: string, connector: string): ConnectorLink | undefined {
    return this.ctx.registry.linksFor(server).find((l) => l.accepting && l.peer.id.toString() === connector);
  }

  private connector(req: IncomingMessage, socket: Duplex, head: Buffer, path: string, peer: PeerIdentity): void {
    if (!offered(req).includes(LINK_SUBPROTOCOL)) {
      this.refuse(req, socket, path, 400, 'bad_subprotocol', `the WebSocket subprotocol must be "${LINK_SUBPROTOCOL}"`, peer);
      return;
    }
    if (!this.ctx.policy.identity(peer).isConnector) {
      this.refuse(req, socket, path, 403, 'not_a_connector', 'this identity is not a connector of any server', peer);
      return;
    }
    this.linkServer.handleUpgrade(req, socket, head, (ws: WebSocket) => this.hooks.startLink(ws, socket, peer));
  }

  private refuse(
    req: IncomingMessage,
    socket: Duplex,
    path: string,
    status: number,
    why: UpgradeRefusal,
    message: string,
    peer?: PeerIdentity,
    detail?: string,
  ): void {
    this.ctx.metrics.refused[why]++;
    this.ctx.audit.write({
      type: 'connection.refused',
      peer: peer?.id.toString() ?? null,
      certSerial: peer?.certSerial ?? null,
      remote: `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`,
      path: path.length > 256 ? `${path.slice(0, 256)}…` : path,
      status,
      reason: (detail ?? message).slice(0, 512),
    });
    this.ctx.logger.info({ status, reason: why, peer: peer?.id.toString(), detail }, 'upgrade refused');
    refuseUpgrade(socket, status, message);
  }
}
