/**
 * Local error codes of `@switchboard/agent-sdk`. Wire codes (HTTP statuses before the upgrade,
 * WebSocket close codes, JSON-RPC error codes) are in `@switchboard/protocol` and `docs/errors.md`.
 */

/** AgentErrorCode names every condition the agent SDK reports. */
export type AgentErrorCode =
  | 'AGENT_ERR_ACCESS_DENIED'
  | 'AGENT_ERR_NO_CONNECTOR'
  | 'AGENT_ERR_CERT_REJECTED'
  | 'AGENT_ERR_RELAY_UNREACHABLE'
  | 'AGENT_ERR_SESSION_CLOSED'
  | 'AGENT_ERR_HANDSHAKE'
  | 'AGENT_ERR_IDENTITY_INVALID'
  | 'AGENT_ERR_NOT_CONNECTED';

/**
 * AgentError is the base class of every error the agent SDK raises. `code` is stable, `message`
 * says what happened and what to do, and `retryable` says whether trying again can help.
 */
export class AgentError extends Error {
  readonly code: AgentErrorCode;
  readonly retryable: boolean;

  constructor(code: AgentErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/**
 * AccessDeniedError is the relay answering the upgrade with HTTP 403: this identity may not use the
 * server, the server is not in the policy (the relay does not say which), or the identity is revoked.
 */
export class AccessDeniedError extends AgentError {
  readonly status = 403;
  /** reason is the relay's one-line explanation. */
  readonly reason: string;

  constructor(server: string, identity: string, reason: string) {
    super('AGENT_ERR_ACCESS_DENIED', `agent: access denied: ${identity} may not use server "${server}"${reason ? ` (relay: ${reason})` : ''}`);
    this.name = 'AccessDeniedError';
    this.reason = reason;
  }
}

/** NoConnectorError is HTTP 503: the identity may use the server, but no connector serves it right now. */
export class NoConnectorError extends AgentError {
  readonly status = 503;
  readonly reason: string;

  constructor(server: string, reason: string) {
    super('AGENT_ERR_NO_CONNECTOR', `agent: no connector is online for server "${server}"${reason ? ` (relay: ${reason})` : ''}; try again later`, { retryable: true });
    this.name = 'NoConnectorError';
    this.reason = reason;
  }
}

/**
 * CertificateRejectedError is a certificate problem that stops the TLS handshake. `kind` says whose:
 * `rejected-by-relay` (the relay refused our certificate: not from a CA it trusts, expired, revoked),
 * `expired` / `not-yet-valid` (our own certificate, found before dialing), or `relay-untrusted` (the
 * relay's certificate failed our checks: wrong CA, not an SVID, not the expected relay ID).
 */
export class CertificateRejectedError extends AgentError {
  readonly kind: 'rejected-by-relay' | 'expired' | 'not-yet-valid' | 'relay-untrusted';

  constructor(kind: CertificateRejectedError['kind'], message: string, options: { cause?: unknown } = {}) {
    super('AGENT_ERR_CERT_REJECTED', `agent: ${message}`, options);
    this.name = 'CertificateRejectedError';
    this.kind = kind;
  }
}

/** RelayUnreachableError is a relay that cannot be reached: connection refused, DNS failure, reset, timeout. */
export class RelayUnreachableError extends AgentError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('AGENT_ERR_RELAY_UNREACHABLE', `agent: ${message}`, { cause: options.cause, retryable: true });
    this.name = 'RelayUnreachableError';
  }
}

// What each close code means to the user; see docs/errors.md.
const CLOSE_MEANING: Record<number, [string, boolean]> = {
  1001: ['the relay is shutting down', true],
  1002: ['protocol error', false],
  1003: ['the relay refused a binary frame', false],
  1006: ['the connection to the relay was lost', true],
  1007: ['the relay refused a frame that is not valid UTF-8', false],
  1008: ['policy violation', false],
  1009: ['a message exceeded the size limit', false],
  1011: ['internal error at the relay', true],
  4401: ['this identity was revoked or its certificate expired', false],
  4403: ['this identity may no longer use the server', false],
  4409: ['the session was resumed through another connection', false],
  4410: ['the session could not be resumed (unknown, expired, or not this identity\'s); open a new one', true],
  4502: ['the MCP server behind the connector failed or exited', true],
  4503: ['no connector serves the server any more', true],
  4504: ['the connector did not open the session in time', true],
  4508: ['replies were not read fast enough (session buffer overflow)', false],
  4509: ['the connector link carrying this session was lost', true],
};

/** SessionClosedError is a session the relay ended; `closeCode` and `reason` are what it sent. */
export class SessionClosedError extends AgentError {
  readonly closeCode: number;
  readonly reason: string;

  constructor(closeCode: number, reason: string) {
    const [meaning, retryable] = CLOSE_MEANING[closeCode] ?? ['the relay closed the session', false];
    super('AGENT_ERR_SESSION_CLOSED', `agent: session closed (${closeCode}): ${meaning}${reason ? `: ${reason}` : ''}`, { retryable });
    this.name = 'SessionClosedError';
    this.closeCode = closeCode;
    this.reason = reason;
  }
}

/** HandshakeError is an upgrade refused for another reason (HTTP 400 and others, wrong subprotocol, redirect). */
export class HandshakeError extends AgentError {
  readonly status: number | undefined;

  constructor(message: string, options: { cause?: unknown; status?: number } = {}) {
    super('AGENT_ERR_HANDSHAKE', `agent: ${message}`, { cause: options.cause, retryable: options.status !== undefined && options.status >= 500 });
    this.name = 'HandshakeError';
    this.status = options.status;
  }
}

/** IdentityError is an identity directory that cannot be read (missing or malformed files). */
export class IdentityError extends AgentError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('AGENT_ERR_IDENTITY_INVALID', `agent: ${message}`, options);
    this.name = 'IdentityError';
  }
}

/** NotConnectedError is a send on a transport that is not open (not started yet, or closed). */
export class NotConnectedError extends AgentError {
  constructor(message = 'transport is not connected') {
    super('AGENT_ERR_NOT_CONNECTED', `agent: ${message}`);
    this.name = 'NotConnectedError';
  }
}

/** isAgentError narrows `err` to an {@link AgentError}, optionally with a given code. */
export function isAgentError(err: unknown, code?: AgentErrorCode): err is AgentError {
  return err instanceof AgentError && (code === undefined || err.code === code);
}
