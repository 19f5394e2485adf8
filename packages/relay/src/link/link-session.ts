import type { EventPayload, OpenOkPayload, OpenPayload } from '@switchboard/protocol';
import type { PeerIdentity } from '../auth/peer-auth.js';

/**
 * LinkSession is one agent session as the connector link carrying it sees it: the link routes
 * the connector's frames for the session (DATA, WINDOW, OPEN_OK, OPEN_FAIL, CLOSE) to these
 * handlers, ends it when the link is lost, and drives its heartbeat. The splice implements it;
 * the link never needs more of a session than this.
 */
export interface LinkSession {
  readonly server: string;
  readonly agent: PeerIdentity;
  /** sessionId is the id {@link SessionHost.attach} gave the session on this link. */
  readonly sessionId: number;
  /** isOpening is true until OPEN_OK or OPEN_FAIL. */
  readonly isOpening: boolean;
  handleServerData(data: Buffer): void;
  handleWindow(increment: number): void;
  handleOpenOk(payload: OpenOkPayload): void;
  handleOpenFail(code: unknown, reason: unknown): void;
  handleServerClose(code: unknown, reason: unknown): void;
  /** handleEvent records an EVENT the connector reported for this session (egress.denied). */
  handleEvent(event: EventPayload): void;
  /** handleLinkLost ends the session: its link is gone (`resumable`: lost, not closed for the connector's sake). */
  handleLinkLost(resumable: boolean): void;
  /** tick is the heartbeat: ping the agent, end it after `idleTicks` silent periods. */
  tick(idleTicks: number): void;
}

/** SessionHost is what a session needs of the connector link carrying it. */
export interface SessionHost {
  /** linkId names the link in WELCOME, logs and audit records. */
  readonly linkId: string;
  /** peer is the connector's authenticated identity. */
  readonly peer: PeerIdentity;
  /** attach registers `session`, sends OPEN (with the backend's JWT-SVID, the resume fields, when given) and returns the session id. */
  attach(session: LinkSession, jwtSvid?: string, resume?: Pick<OpenPayload, 'resumable' | 'resume' | 'traceparent'>): number;
  /** detach forgets `session` (it has ended). */
  detach(session: LinkSession): void;
  sendData(sessionId: number, message: Buffer): void;
  sendWindow(sessionId: number, increment: number): void;
  sendClose(sessionId: number, code: number, reason: string): void;
}
