import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { coalesce } from '@switchboard/common';
import type { SessionHost } from '../link/link-session.js';

/** AGENT_WRITE_HIGH_WATER is the agent socket backlog above which the relay withholds credit. */
export const AGENT_WRITE_HIGH_WATER = 64 * 1024;

const PAUSE_CREDIT = 1;
const PAUSE_LOCAL = 2;
const PAUSE_AUDIT = 4;
const PAUSE_PINS = 8;
const PAUSE_TURN = 16;
const TEXT = Object.freeze({ binary: false });

/** FlowLimits are the numbers a session's flow control works with. */
export interface FlowLimits {
  /** window is the per-direction initial credit announced in WELCOME. */
  readonly window: number;
  /** maxMessageBytes bounds one agent message; the queue holds window + one message. */
  readonly maxMessageBytes: number;
}

/**
 * SessionFlow is one session's flow control (docs/protocol.md, "Flow control"), both directions:
 *
 * - agent → connector: DATA goes out while the connector's credit is positive; otherwise (and
 *   before OPEN_OK) it waits in a queue bounded by window + one message, and the agent's socket is
 *   paused until WINDOW returns credit. Overflowing the bound calls `onOverflow` (close 4508).
 * - connector → agent: credit is returned with WINDOW only from the agent socket's write callback
 *   once its backlog is below {@link AGENT_WRITE_HIGH_WATER}, so a reader that stops reading stops
 *   the connector for this session only.
 * - messages the relay answers itself are written to the agent too; if the agent does not read
 *   them, its socket is paused as well, so no buffer grows without bound.
 */
export class SessionFlow {
  private readonly ws: WebSocket;
  private readonly socket: Duplex;
  private readonly link: SessionHost;
  private readonly limits: FlowLimits;
  private readonly onOverflow: () => void;
  private readonly afterAgentWrite: (err?: Error) => void;
  private readonly grantThreshold: number;
  /** sessionId is the link session these frames belong to. */
  sessionId = 0;
  private open = false;
  private done = false;

  private upCredit: number;
  private upQueue: Buffer[] = [];
  private upHead = 0;
  private upQueued = 0;
  private pauseMask = 0;
  private owedDown = 0;

  constructor(init: { ws: WebSocket; socket: Duplex; link: SessionHost; limits: FlowLimits; onOverflow: () => void }) {
    this.ws = init.ws;
    this.socket = init.socket;
    this.link = init.link;
    this.limits = init.limits;
    this.onOverflow = init.onOverflow;
    this.upCredit = init.limits.window;
    this.grantThreshold = Math.max(1, Math.floor(init.limits.window / 4));
    // One callback per session, not per message.
    this.afterAgentWrite = (err?: Error) => {
      if (err === undefined || err === null) this.agentWritten();
    };
  }

  /** paused reports whether the agent's socket is paused (credit spent, or replies unread). */
  get paused(): boolean {
    return this.pauseMask !== 0;
  }

  /** holdForPins pauses (or resumes) reading from the agent while the relay lists the server's tools itself. */
  holdForPins(on: boolean): void {
    this.setPause(PAUSE_PINS, on);
  }

  /** holdForTurn pauses (or resumes) reading from the agent while its messages wait for their turn (TurnQueue). */
  holdForTurn(on: boolean): void {
    this.setPause(PAUSE_TURN, on);
  }

  /** holdAgent pauses (or resumes) reading from the agent while its requests wait for their audit records. */
  holdAgent(on: boolean): void {
    this.setPause(PAUSE_AUDIT, on);
  }

  /** opened is OPEN_OK: queued agent messages go out within credit. */
  opened(): void {
    this.open = true;
    this.flushUp();
  }

  /** window is a WINDOW frame from the connector. */
  window(increment: number): void {
    if (this.done) return;
    this.upCredit += increment;
    if (this.open) this.flushUp();
  }

  /** end releases the queues; nothing is sent afterwards. */
  end(): void {
    this.done = true;
    this.open = false;
    this.upQueue = [];
    this.upHead = 0;
    this.upQueued = 0;
  }

  // ---------------------------------------------------------------- agent → connector

  /** sendUp forwards one message to the connector within credit, or queues it (bounded). */
  sendUp(data: Buffer): void {
    if (this.done) return;
    const len = data.length;
    if (this.open && this.upHead === this.upQueue.length && this.upCredit > 0) {
      this.link.sendData(this.sessionId, data);
      this.upCredit -= len;
      if (this.upCredit <= 0) this.setPause(PAUSE_CREDIT, true);
      return;
    }
    if (this.upQueued + len > this.limits.window + this.limits.maxMessageBytes) {
      this.onOverflow();
      return;
    }
    this.upQueue.push(data);
    this.upQueued += len;
    if (this.upQueued >= this.upCredit) this.setPause(PAUSE_CREDIT, true);
  }

  private flushUp(): void {
    const q = this.upQueue;
    while (this.upHead < q.length && this.upCredit > 0) {
      const m = q[this.upHead] as Buffer;
      q[this.upHead++] = undefined as unknown as Buffer;
      this.upQueued -= m.length;
      this.link.sendData(this.sessionId, m);
      this.upCredit -= m.length;
    }
    if (this.upHead === q.length) {
      this.upQueue = [];
      this.upHead = 0;
    }
    if (this.upQueued < this.upCredit) this.setPause(PAUSE_CREDIT, false);
  }

  private setPause(bit: number, on: boolean): void {
    const before = this.pauseMask;
    const after = on ? before | bit : before & ~bit;
    if (after === before) return;
    this.pauseMask = after;
    if (before === 0) this.ws.pause();
    else if (after === 0) this.ws.resume();
  }

  // ---------------------------------------------------------------- connector → agent

  /** sendDown writes a server message to the agent; its credit returns once the socket drained. */
  sendDown(payload: Buffer | string, creditBytes: number): boolean {
    const ws = this.ws;
    if (ws.readyState !== WebSocket.OPEN) {
      this.drop(creditBytes);
      return false;
    }
    this.owedDown += creditBytes;
    coalesce(this.socket);
    ws.send(payload, TEXT, this.afterAgentWrite);
    return true;
  }

  /** drop returns the credit of a server message that was not handed to the agent. */
  drop(creditBytes: number): void {
    this.owedDown += creditBytes;
    this.maybeGrant();
  }

  /** reply writes a message the relay composed itself (an answer in the server's place). */
  reply(text: string | Buffer): void {
    const ws = this.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    coalesce(this.socket);
    ws.send(text, TEXT, this.afterAgentWrite);
    // An agent that floods requests the relay answers itself, and does not read the answers, is
    // stopped here: its socket's backlog is bounded like everything else.
    if (ws.bufferedAmount >= AGENT_WRITE_HIGH_WATER) this.setPause(PAUSE_LOCAL, true);
  }

  private agentWritten(): void {
    if (this.ws.bufferedAmount < AGENT_WRITE_HIGH_WATER) {
      if ((this.pauseMask & PAUSE_LOCAL) !== 0) this.setPause(PAUSE_LOCAL, false);
      this.maybeGrant();
    }
  }

  private maybeGrant(): void {
    if (!this.open || this.owedDown < this.grantThreshold) return;
    if (this.ws.bufferedAmount >= AGENT_WRITE_HIGH_WATER) return;
    const n = this.owedDown;
    this.owedDown = 0;
    this.link.sendWindow(this.sessionId, n);
  }
}
