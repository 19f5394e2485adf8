/** An agent as the relay sees it: a raw WebSocket client speaking JSON-RPC, every wait bounded. */
import { AGENT_SUBPROTOCOL } from '@switchboard/protocol';
import WebSocket from 'ws';
import { connect, outcome, type TestRelay } from './relay.js';
import { sleep, within } from './time.js';

/** Msg is a JSON-RPC message as tests read it. */
export type Msg = Record<string, unknown> & { id?: unknown; method?: string; result?: any; error?: any };

/** AgentClient is one agent session: send, await the next message, call and wait for the answer. */
export class AgentClient {
  readonly ws: WebSocket;
  readonly received: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private next_ = 0;
  private wake: (() => void) | undefined;
  private nextId = 1;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.received.push(isBinary ? `<binary ${data.length}>` : data.toString('utf8'));
      this.wake?.();
    });
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString('utf8') });
        this.wake?.();
      });
    });
    ws.on('error', () => undefined);
  }

  static async open(t: TestRelay, id: string, server: string): Promise<AgentClient> {
    const ws = connect(t, `/v1/agent/${server}`, await t.creds(id), AGENT_SUBPROTOCOL);
    const o = await outcome(ws);
    if (o.kind !== 'open') throw new Error(`agent ${id} could not open ${server}: ${JSON.stringify(o)}`);
    return new AgentClient(ws);
  }

  send(msg: object | string): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** request sends a request with a fresh numeric id (or `id`) and returns the id. */
  request(method: string, params?: object, id?: string | number): string | number {
    const rid = id ?? this.nextId++;
    this.send({ jsonrpc: '2.0', id: rid, method, ...(params ? { params } : {}) });
    return rid;
  }

  /** nextRaw waits for the next message, as text. */
  async nextRaw(ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    while (this.next_ >= this.received.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for an agent message`);
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('agent socket closed while waiting for a message');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return this.received[this.next_++] as string;
  }

  async next(ms = 5000): Promise<Msg> {
    return JSON.parse(await this.nextRaw(ms)) as Msg;
  }

  /** call sends a request and waits for the response with its id (other messages are kept). */
  async call(method: string, params?: object, id?: string | number): Promise<Msg> {
    const rid = this.request(method, params, id);
    for (;;) {
      const raw = await this.nextRaw();
      // Binary messages (REAUTH results, session info) are not JSON-RPC: kept in `received`, skipped here.
      if (raw.startsWith('<binary ')) continue;
      const m = JSON.parse(raw) as Msg;
      if (m.id === rid && m.method === undefined) return m;
    }
  }

  /** quiet asserts that no message arrives for `ms`. */
  async expectQuiet(ms = 150): Promise<void> {
    const before = this.received.length;
    await sleep(ms);
    if (this.received.length !== before) throw new Error(`unexpected agent message: ${this.received.slice(before).join(' | ')}`);
  }

  async closedWithin(ms = 5000): Promise<{ code: number; reason: string }> {
    return within(this.closed, ms, 'the agent socket to close');
  }
}

