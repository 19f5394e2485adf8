/**
 * Local error codes of `@switchboard/connector`. Wire codes (WebSocket close codes, JSON-RPC error
 * codes) live in `@switchboard/protocol`; both are listed in `docs/errors.md`.
 */

/** ConnectorErrorCode names every condition the connector reports. */
export type ConnectorErrorCode =
  | 'CONNECTOR_ERR_CONFIG_INVALID'
  | 'CONNECTOR_ERR_CONFIG_UNREADABLE'
  | 'CONNECTOR_ERR_IDENTITY_INVALID'
  | 'CONNECTOR_ERR_IDENTITY_EXPIRED'
  | 'CONNECTOR_ERR_IDENTITY_REJECTED'
  | 'CONNECTOR_ERR_RELAY_UNTRUSTED'
  | 'CONNECTOR_ERR_RELAY_UNREACHABLE'
  | 'CONNECTOR_ERR_HANDSHAKE_FAILED'
  | 'CONNECTOR_ERR_PROTOCOL'
  | 'CONNECTOR_ERR_PROTOCOL_VERSION'
  | 'CONNECTOR_ERR_NO_SERVERS_ACCEPTED'
  | 'CONNECTOR_ERR_LINK_LOST'
  | 'CONNECTOR_ERR_BACKEND_FAILED';

/**
 * ConnectorError is the base class of every error the connector raises. `code` is stable,
 * `message` starts with the module (`config: …`, `link: …`), and `retryable` tells whether
 * repeating the same operation can succeed without an operator's help.
 */
export class ConnectorError extends Error {
  readonly code: ConnectorErrorCode;
  readonly retryable: boolean;

  constructor(code: ConnectorErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConnectorError';
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** ConfigError is an invalid `connector.yaml`; `path` names the offending key (`servers.crm.url`). */
export class ConfigError extends ConnectorError {
  /** path is the dotted key path of the offending value, `''` for the whole document. */
  readonly path: string;

  /** line is the 1-based line of the key in the file, when it came from one. */
  readonly line: number | undefined;

  /** `where` (`connector.yaml:7:5`) names the file and position, when the config came from one. */
  constructor(path: string, message: string, options: { cause?: unknown; where?: string; line?: number } = {}) {
    const at = `${options.where === undefined ? '' : `${options.where}: `}${path === '' ? '' : `${path}: `}`;
    super('CONNECTOR_ERR_CONFIG_INVALID', `config: ${at}${message}`, options.cause === undefined ? {} : { cause: options.cause });
    this.name = 'ConfigError';
    this.path = path;
    this.line = options.line;
  }
}

/** ConfigUnreadableError is a config file that cannot be read or is not valid YAML. */
export class ConfigUnreadableError extends ConnectorError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CONNECTOR_ERR_CONFIG_UNREADABLE', `config: ${message}`, options);
    this.name = 'ConfigUnreadableError';
  }
}

/** IdentityError is an identity directory that cannot be loaded (missing or malformed files). */
export class IdentityError extends ConnectorError {
  constructor(message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super('CONNECTOR_ERR_IDENTITY_INVALID', `identity: ${message}`, options);
    this.name = 'IdentityError';
  }
}

/** IdentityExpiredError is our own X509-SVID being expired (or not yet valid) before dialing. */
export class IdentityExpiredError extends ConnectorError {
  constructor(message: string) {
    super('CONNECTOR_ERR_IDENTITY_EXPIRED', `identity: ${message}`, { retryable: true });
    this.name = 'IdentityExpiredError';
  }
}

/**
 * IdentityRejectedError is the relay refusing our identity: a TLS alert about our certificate (bad,
 * unknown CA, expired, revoked, required), HTTP 403 on the upgrade, or close code 4401.
 */
export class IdentityRejectedError extends ConnectorError {
  /** status is the HTTP status of a refused upgrade, when that is how the relay refused. */
  readonly status: number | undefined;

  constructor(message: string, options: { cause?: unknown; status?: number } = {}) {
    super('CONNECTOR_ERR_IDENTITY_REJECTED', `link: ${message}`, { cause: options.cause, retryable: false });
    this.name = 'IdentityRejectedError';
    this.status = options.status;
  }
}

/** RelayUntrustedError is a relay whose certificate fails our checks (bundle, SVID rules, relayId). */
export class RelayUntrustedError extends ConnectorError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CONNECTOR_ERR_RELAY_UNTRUSTED', `link: ${message}`, options);
    this.name = 'RelayUntrustedError';
  }
}

/** RelayUnreachableError is a relay we cannot reach: refused, DNS failure, reset, timeout. */
export class RelayUnreachableError extends ConnectorError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CONNECTOR_ERR_RELAY_UNREACHABLE', `link: ${message}`, { cause: options.cause, retryable: true });
    this.name = 'RelayUnreachableError';
  }
}

/** HandshakeError is a WebSocket upgrade that failed for another reason than our identity (400, 5xx, subprotocol). */
export class HandshakeError extends ConnectorError {
  /** status is the HTTP status the relay answered, when it answered one. */
  readonly status: number | undefined;

  constructor(message: string, options: { cause?: unknown; status?: number } = {}) {
    super('CONNECTOR_ERR_HANDSHAKE_FAILED', `link: ${message}`, { cause: options.cause, retryable: true });
    this.name = 'HandshakeError';
    this.status = options.status;
  }
}

/** ProtocolError is a link protocol violation by either side, or a protocol version we do not speak. */
export class ProtocolError extends ConnectorError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CONNECTOR_ERR_PROTOCOL', `link: ${message}`, { cause: options.cause, retryable: true });
    this.name = 'ProtocolError';
  }
}

/** ProtocolVersionError is a relay answering HELLO with a link protocol version this connector does not speak. */
export class ProtocolVersionError extends ConnectorError {
  constructor(message: string) {
    super('CONNECTOR_ERR_PROTOCOL_VERSION', `link: ${message}`);
    this.name = 'ProtocolVersionError';
  }
}

/** NoServersAcceptedError is a WELCOME that registered none of our servers. */
export class NoServersAcceptedError extends ConnectorError {
  /** rejected lists each server the relay refused, with its reason. */
  readonly rejected: readonly { server: string; reason: string }[];

  constructor(rejected: readonly { server: string; reason: string }[]) {
    const detail = rejected.map((r) => `${r.server} (${r.reason})`).join(', ');
    super('CONNECTOR_ERR_NO_SERVERS_ACCEPTED', `link: the relay accepted none of our servers${detail ? `: ${detail}` : ''}`);
    this.name = 'NoServersAcceptedError';
    this.rejected = rejected;
  }
}

/** LinkLostError is an established link that ended: closed by the relay, dropped, or silent for too long. */
export class LinkLostError extends ConnectorError {
  /** closeCode is the WebSocket close code, when one was received. */
  readonly closeCode: number | undefined;

  constructor(message: string, options: { cause?: unknown; closeCode?: number } = {}) {
    super('CONNECTOR_ERR_LINK_LOST', `link: ${message}`, { cause: options.cause, retryable: true });
    this.name = 'LinkLostError';
    this.closeCode = options.closeCode;
  }
}

/** BackendError is a backend MCP session that failed to start or ended on its own. */
export class BackendError extends ConnectorError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CONNECTOR_ERR_BACKEND_FAILED', `backend: ${message}`, { cause: options.cause, retryable: true });
    this.name = 'BackendError';
  }
}

/** isConnectorError narrows `err` to a {@link ConnectorError}, optionally with a given code. */
export function isConnectorError(err: unknown, code?: ConnectorErrorCode): err is ConnectorError {
  return err instanceof ConnectorError && (code === undefined || err.code === code);
}
