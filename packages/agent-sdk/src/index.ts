export { RelayClientTransport, MAX_INBOUND_MESSAGE_BYTES } from './relay-client-transport.js';
export { SERVER_NAME_PATTERN } from '@switchboard/protocol';
export type { RelayClientTransportOptions, FailoverOptions } from './relay-client-transport.js';
export { connect } from './connect.js';
export type { ConnectOptions } from './connect.js';
export { AgentIdentity, loadIdentity } from './identity.js';
export {
  AgentError,
  AccessDeniedError,
  NoConnectorError,
  CertificateRejectedError,
  RelayUnreachableError,
  SessionClosedError,
  HandshakeError,
  IdentityError,
  NotConnectedError,
  isAgentError,
} from './errors.js';
export type { AgentErrorCode } from './errors.js';
export { runStdioBridge } from './bridge/stdio.js';
export type { StdioBridgeOptions, StdioBridgeResult } from './bridge/stdio.js';
export { startHttpBridge, parseLoopbackListen } from './bridge/http.js';
export type { HttpBridge, HttpBridgeOptions } from './bridge/http.js';
export { agentCommand, runAgentStdio, runAgentHttp } from './cli/agent-command.js';
export type { AgentStdioOptions, AgentHttpOptions, AgentCliDeps } from './cli/agent-command.js';
export { silentLogger } from '@switchboard/common';
export type { Logger } from '@switchboard/common';
export { AGENT_SDK_VERSION } from './version.js';
