import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { OpenPayload } from '@switchboard/protocol';
import type { ServerConfig } from '../config.js';
import type { Logger } from '@switchboard/common';
import type { EgressDenial } from '../sandbox/egress-proxy.js';

/**
 * BackendSink receives what one backend session produces. The link's session object implements
 * it; a backend calls it from its transport callbacks, never after `close()` began.
 */
export interface BackendSink {
  /**
   * message is one JSON-RPC message from the backend, to forward to the agent. `json`, when
   * given, is the message as the backend wrote it (validated): it is forwarded as is instead of
   * `JSON.stringify(message)`.
   */
  message(message: JSONRPCMessage, json?: string): void;
  /** written reports that `bytes` of agent input were handed to the backend and it drained. */
  written(bytes: number): void;
  /** ended reports that the backend session ended on its own (process exit, HTTP failure). */
  ended(reason: string): void;
  /** egressDenied reports a destination a contained server asked for and was refused. */
  egressDenied?(denial: EgressDenial): void;
}

/**
 * BackendSession is one MCP session on a backend server for one agent session: a stdio process,
 * or one Streamable-HTTP MCP session. It is a raw message pipe built on the MCP SDK's client
 * transports; it does not interpret MCP.
 */
export interface BackendSession {
  /** start spawns or connects; rejects when the backend cannot be started. */
  start(): Promise<void>;
  /** send hands one message to the backend; `bytes` is its wire size, reported back via `written`. */
  send(message: JSONRPCMessage, bytes: number): void;
  /**
   * sendRaw, where the transport allows it, hands one message as the bytes the relay sent (one
   * JSON object, already strictly parsed by the relay) and returns true; false means "use send".
   * Its size is reported back via `written` like `send`'s.
   */
  sendRaw?(data: Buffer): boolean;
  /** pause stops reading the backend's output where the transport allows it (stdio). */
  pause(): void;
  /** resume undoes {@link BackendSession.pause}. */
  resume(): void;
  /** close ends the session (kills the process / terminates the MCP session); idempotent. */
  close(): Promise<void>;
}

/** BackendFactory makes the backend session for an OPEN of a configured server. */
export type BackendFactory = (server: ServerConfig, open: OpenPayload, sink: BackendSink, logger: Logger) => BackendSession;
