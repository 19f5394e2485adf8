export {
  LINK_PROTOCOL_VERSION,
  LINK_SUBPROTOCOL,
  AGENT_SUBPROTOCOL,
  HEADER_BYTES,
  MAX_HELLO_SERVERS,
  DEFAULT_SESSION_WINDOW_BYTES,
  FrameType,
  LinkProtocolError,
  encodeData,
  encodeWindow,
  encodeControl,
  decodeFrame,
  MAX_EVENT_FIELD,
} from './link-frames.js';
export type { Frame, HelloPayload, WelcomePayload, OpenPayload, OpenOkPayload, ClosePayload, EventPayload } from './link-frames.js';
export { RESUME_HEADER, LOST_LINK_CLOSES, MAX_RESUME_TOKEN_CHARS, ResumeTokenError, encodeResumeToken, decodeResumeToken, parseResumeHeader, readSessionInfo, isCredentialPart } from './resume.js';
export type { ResumeCredential, ResumeToken, SessionInfo } from './resume.js';
export { CloseCode, RpcErrorCode, MAX_CLOSE_REASON_BYTES, sendableCloseCode, closeReason } from './codes.js';
export { isJsonRpcMessage } from './json-rpc.js';
export { refusalBody, readRefusalReason, MAX_REFUSAL_READ_BYTES, MAX_REFUSAL_REASON_CHARS } from './refusal.js';
export { SERVER_NAME_PATTERN, SERVER_NAME_RULE, isServerName } from './server-name.js';
export { RelayTls, checkRelayCertificate, relayCertificateExpiry } from './relay-tls.js';
export { renewOverRelay, renewOverRelays, enrollWithRelay, enrollIfEmpty, EnrollFileError, RenewalError, RENEW_PATH, ENROLL_PATH } from './renewal.js';
export type { RenewOptions, EnrollOptions, EnrollSetting } from './renewal.js';
export { IdentityRenewer } from './renewer.js';
export { reauthProof, openReauth, checkReauthPayload, REAUTH_EXPORTER_LABEL, REAUTH_HEADER } from './reauth.js';
export type { ReauthPayload, ReauthResultPayload } from './reauth.js';
export type { RenewerOptions, RenewerStatus } from './renewer.js';
export { DEFAULT_RELAY_ID_PATTERN, RELAY_ID_RULE, parseRelayId, relayIdFor } from './relay-id.js';
export { classifyDialFailure } from './dial-failure.js';
export type { DialFailure } from './dial-failure.js';
export type { UntrustedRelay } from './relay-tls.js';
