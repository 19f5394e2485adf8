/**
 * Audit record kinds. A record is what the relay reports (`AuditRecordInput`); the trail adds the
 * chain fields (`seq`, `time`, `prev`, `hash`) and stores the result as one line of canonical JSON.
 * Tool arguments are not stored: `argsDigest` is the SHA-256 of their canonical JSON, and `args`
 * (already redacted by the caller) only appears when a policy rule asks for it.
 */

/** AuditDecision is the policy outcome of one request. */
export type AuditDecision = 'allow' | 'deny';

/** AuditSessionRef names the session a record is about; `agent` and `connector` are SPIFFE IDs. */
export interface AuditSessionRef {
  /** sessionId is unique within the relay's lifetime (e.g. `<linkId>/<n>`). */
  sessionId: string;
  server: string;
  agent: string;
}

/** AuditSessionOpen is written when the relay splices an agent session onto a connector link. */
export interface AuditSessionOpen extends AuditSessionRef {
  type: 'session.open';
  connector: string;
  /** agentCertSerial is the serial number (hex) of the agent's X509-SVID. */
  agentCertSerial: string;
  /** connectorCertSerial is the serial number (hex) of the connector's X509-SVID. */
  connectorCertSerial: string;
  linkId?: string;
}

/**
 * AuditSessionResume is written, instead of `session.open`, when an agent resumes a session whose
 * relay was lost: the same backend session, re-attached by the connector through this relay.
 * Authorized like a new session (policy, revocation); `resumeId` names the backend session across
 * relays (never the secret that proves it).
 */
export interface AuditSessionResume extends AuditSessionRef {
  type: 'session.resume';
  connector: string;
  agentCertSerial: string;
  connectorCertSerial: string;
  linkId?: string;
  resumeId: string;
}

/** AuditSessionClose is written when a session ends, for any reason. */
export interface AuditSessionClose extends AuditSessionRef {
  type: 'session.close';
  connector: string;
  /** code is the WebSocket close code the agent saw. */
  code: number;
  reason: string;
  durationMs: number;
}

/**
 * AuditEgressDenied is written when the connector refused a destination a contained server asked
 * for (connector.yaml `egress`): which session, agent and server, where to, and the rule. The
 * connector reports each destination once per session.
 */
export interface AuditEgressDenied extends AuditSessionRef {
  type: 'egress.denied';
  connector: string;
  destination: string;
  port: number;
  reason: string;
}

/** AuditRequest is one policy decision on a JSON-RPC request, in either direction. */
export interface AuditRequest extends AuditSessionRef {
  type: 'request';
  /** direction: an agent's request to the server, or the server's request to the agent (sampling, elicitation, roots). */
  direction: 'agent-to-server' | 'server-to-agent';
  /** requestId is the JSON-RPC `id` as JSON text (`7`, `"a"`), null for a notification. */
  requestId: string | null;
  method: string;
  /** name is the tool or prompt name, or the resource URI; null when the method names none. */
  name: string | null;
  decision: AuditDecision;
  /** ruleId is the deciding policy rule; null for the default deny. */
  ruleId: string | null;
  reason: string;
  /** argsDigest is SHA-256 hex of the canonical JSON of the arguments ({@link digestArguments}); null when there are none. */
  argsDigest: string | null;
  /** args are the (caller-redacted) arguments, present only when a rule asks to store them. */
  args?: unknown;
}

/** AuditResponse is the outcome of a forwarded request. */
export interface AuditResponse extends AuditSessionRef {
  type: 'response';
  requestId: string | null;
  method: string;
  name: string | null;
  /** status: a result, a JSON-RPC error, or no reply (session ended, cancelled). */
  status: 'ok' | 'error' | 'aborted';
  /** errorCode is the JSON-RPC error code when `status` is `error`. */
  errorCode?: number;
  latencyMs: number;
  /** bytes is the size of the response as forwarded. */
  bytes: number;
  /** redactions counts the values redacted in the response, per kind (`token`, `card`, …). */
  redactions: Record<string, number>;
}

/** AuditPolicyReload is written for every reload attempt; a rejected file leaves the old policy in force. */
export interface AuditPolicyReload {
  type: 'policy.reload';
  accepted: boolean;
  file: string | null;
  /** fileHash is SHA-256 hex of the policy file's bytes. */
  fileHash: string | null;
  error: string | null;
}

/** AuditPinKind is what a pin covers. */
export type AuditPinKind = 'tool' | 'prompt' | 'resource' | 'resource-template';

/** AuditPinDrift is written when a server's definition no longer matches its pin. */
export interface AuditPinDrift {
  type: 'pin.drift';
  server: string;
  connector: string | null;
  kind: AuditPinKind;
  name: string;
  pinnedHash: string;
  observedHash: string;
}

/** AuditPinApproval is written when an operator approves a changed definition. */
export interface AuditPinApproval {
  type: 'pin.approve';
  server: string;
  kind: AuditPinKind;
  name: string;
  previousHash: string | null;
  approvedHash: string;
  /** approvedBy names the operator or identity that approved. */
  approvedBy: string;
}

/** AuditLinkUp is written when a connector link is accepted. */
export interface AuditLinkUp {
  type: 'link.up';
  linkId: string;
  connector: string;
  connectorCertSerial: string;
  /** servers are the servers the link was accepted for; rejectedServers the ones it offered but may not serve. */
  servers: string[];
  rejectedServers: string[];
}

/** AuditLinkDown is written when a connector link ends. */
export interface AuditLinkDown {
  type: 'link.down';
  linkId: string;
  connector: string;
  code: number;
  reason: string;
}

/** AuditRevocation is written when an identity or certificate is revoked. */
export interface AuditRevocation {
  type: 'revocation';
  /** subject is the revoked SPIFFE ID, null when only a serial was revoked. */
  subject: string | null;
  certSerial: string | null;
  reason: string;
  /** sessionsClosed counts the live sessions ended by the revocation. */
  sessionsClosed: number;
}

/** AuditConnectionRefused is written when a peer is refused before a session exists. */
export interface AuditConnectionRefused {
  type: 'connection.refused';
  peer: string | null;
  certSerial: string | null;
  remote: string;
  path: string;
  status: number;
  reason: string;
}

/** AuditIdentityRenew is written for every `POST /v1/renew`: an SVID issued, or the refusal. */
export interface AuditIdentityRenew {
  type: 'identity.renew';
  /** peer is the authenticated SPIFFE ID, null when the client certificate was not a valid SVID. */
  peer: string | null;
  /** certSerial is the serial of the certificate the peer authenticated with. */
  certSerial: string | null;
  issued: boolean;
  /** newCertSerial and notAfter describe the SVID issued (null when refused). */
  newCertSerial: string | null;
  notAfter: string | null;
  /** code is the refusal code (`RENEW_ERR_…`), null when issued. */
  code: string | null;
  reason: string;
  remote: string;
}

/** AuditIdentityEnroll is written for every `POST /v1/enroll` on the enrollment listener. */
export interface AuditIdentityEnroll {
  type: 'identity.enroll';
  /** peer is the SPIFFE ID the CSR named, null when it could not be read. */
  peer: string | null;
  issued: boolean;
  newCertSerial: string | null;
  notAfter: string | null;
  /** code is the refusal code (`ENROLL_ERR_…`), null when issued. */
  code: string | null;
  reason: string;
  remote: string;
}

/** AuditIdentityReauth is written when a live link or session presents a renewed SVID (accepted or not). */
export interface AuditIdentityReauth {
  type: 'identity.reauth';
  peer: string;
  /** on names the connection: `link:<linkId>` or `session:<sessionId>`. */
  on: string;
  certSerial: string;
  accepted: boolean;
  newCertSerial: string | null;
  notAfter: string | null;
  reason: string;
}

/**
 * AuditCheckpoint is written by the trail itself: an Ed25519 signature over the canonical bytes of
 * `{ seq, hash }` of the record before it (`coversSeq`, `coversHash`).
 */
export interface AuditCheckpoint {
  type: 'checkpoint';
  coversSeq: number;
  coversHash: string;
  keyId: string;
  /** sig is the Ed25519 signature, base64url. */
  sig: string;
}

/** AuditRecordInput is a record a caller appends; the trail adds the chain fields. */
export type AuditRecordInput =
  | AuditSessionOpen
  | AuditSessionResume
  | AuditSessionClose
  | AuditEgressDenied
  | AuditRequest
  | AuditResponse
  | AuditPolicyReload
  | AuditPinDrift
  | AuditPinApproval
  | AuditLinkUp
  | AuditLinkDown
  | AuditRevocation
  | AuditConnectionRefused
  | AuditIdentityRenew
  | AuditIdentityEnroll
  | AuditIdentityReauth;

/** AuditRecordBody is any record kind, checkpoints included. */
export type AuditRecordBody = AuditRecordInput | AuditCheckpoint;

/** AuditChainFields are what the trail adds to every record. */
export interface AuditChainFields {
  /** seq counts from 1, contiguous across restarts and rotated files. */
  seq: number;
  /** time is when the record was appended (ISO 8601, UTC, milliseconds). */
  time: string;
  /** prev is the `hash` of the previous record ({@link GENESIS_HASH} for seq 1). */
  prev: string;
  /** hash is SHA-256 hex of the record's canonical JSON without `hash`. */
  hash: string;
}

/** AuditRecord is one stored line of the trail. */
export type AuditRecord = AuditRecordBody & AuditChainFields;

/** AuditRecordType is the `type` of an {@link AuditRecord}. */
export type AuditRecordType = AuditRecordBody['type'];

/** AUDIT_RECORD_TYPES lists every record type, checkpoints included. */
export const AUDIT_RECORD_TYPES: readonly AuditRecordType[] = Object.freeze([
  'session.open',
  'session.resume',
  'session.close',
  'egress.denied',
  'request',
  'response',
  'policy.reload',
  'pin.drift',
  'pin.approve',
  'link.up',
  'link.down',
  'revocation',
  'connection.refused',
  'identity.renew',
  'identity.enroll',
  'identity.reauth',
  'checkpoint',
] as const);

/** GENESIS_HASH is the `prev` of the first record: 64 zero hex digits. */
export const GENESIS_HASH = '0'.repeat(64);
