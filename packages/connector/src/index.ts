export { startConnector, DEFAULT_DRAIN_TIMEOUT_MS } from './supervisor/connector.js';
export type { Connector, StartConnectorOptions } from './supervisor/connector.js';
export type { LinkStatus } from './link/link-status.js';
export { loadConnectorConfig, parseConnectorConfig, isLoopbackHost } from './config.js';
export { SERVER_NAME_PATTERN } from '@switchboard/protocol';
export type { ConnectorConfig, ServerConfig, StdioServerConfig, HttpServerConfig, AdminConfig } from './config.js';
export { Backoff, realSleep } from './supervisor/backoff.js';
export type { BackoffOptions, Sleep } from './supervisor/backoff.js';
export { classify } from './supervisor/classify.js';
export type { Recovery, ClassifyContext } from './supervisor/classify.js';
export { DEFAULT_LINK_TIMING, MAX_LINK_FRAME_BYTES } from './link/link.js';
export type { LinkTiming } from './link/link.js';
export { DEFAULT_OUTPUT_BUFFER_BYTES } from './link/session.js';
export { createBackend } from './backend/create-backend.js';
export type { BackendFactory, BackendSession, BackendSink } from './backend/backend.js';
export { MAX_BACKEND_MESSAGE_BYTES } from './backend/stdio-backend.js';
export { sandboxTools, SandboxUnavailableError, PROXY_PORT } from './sandbox/sandbox.js';
export type { Containment, FilesystemAccess, SandboxTools } from './sandbox/sandbox.js';
export { parseEgressRule, EgressPolicy, WEB_PORTS } from './sandbox/egress-rules.js';
export type { EgressRule, EgressDecision } from './sandbox/egress-rules.js';
export type { EgressDenial } from './sandbox/egress-proxy.js';
export {
  ConnectorError,
  ConfigError,
  ConfigUnreadableError,
  IdentityError,
  IdentityExpiredError,
  IdentityRejectedError,
  RelayUntrustedError,
  RelayUnreachableError,
  HandshakeError,
  ProtocolError,
  ProtocolVersionError,
  NoServersAcceptedError,
  LinkLostError,
  BackendError,
  isConnectorError,
} from './errors.js';
export type { ConnectorErrorCode } from './errors.js';
export { silentLogger } from '@switchboard/common';
export type { Logger } from '@switchboard/common';
export { connectorCommand, runConnector } from './cli/connector-command.js';
export type { ConnectorCommandOptions, RunConnectorDeps, SignalSource } from './cli/connector-command.js';
export { CONNECTOR_VERSION } from './version.js';
export { ConnectorMetrics, counterName } from './admin/metrics.js';
export type { MetricsSource } from './admin/metrics.js';
export type { BackendTimings } from './link/session.js';
