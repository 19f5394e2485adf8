/**
 * Audit records: one per session open/close, per tools/call decision, per server→agent request
 * decision, per refused upgrade, per connector link and per policy reload. Tool arguments and
 * results are never recorded.
 */

/** AuditSessionRef identifies a session in every record about it. */
export interface AuditSessionRef {
  /** sessionId is the session's id on its link; with linkId it is unique. */
  sessionId: number;
  linkId: string;
  agent: string;
  connector: string;
  server: string;
  /** certSerial is the serial number (hex) of the agent's certificate. */
  certSerial: string;
}

/** AuditRecord is one line of the audit trail; `time` is an ISO 8601 timestamp. */
export type AuditRecord =
  | ({ type: 'session.open'; time: string } & AuditSessionRef)
  | ({ type: 'session.close'; time: string; code: number; reason: string; durationMs: number } & AuditSessionRef)
  | ({
      type: 'tool.call';
      time: string;
      tool: string;
      decision: 'allow' | 'deny';
      ruleId: string | null;
      reason: string;
      /** requestId is the JSON-RPC id as the agent sent it (JSON text). */
      requestId: string;
    } & AuditSessionRef)
  | ({
      type: 'server.request';
      time: string;
      method: string;
      decision: 'allow' | 'deny';
      ruleId: string | null;
      reason: string;
      requestId: string;
    } & AuditSessionRef)
  | {
      type: 'upgrade.refused';
      time: string;
      /** peer is the SPIFFE ID from the client certificate, when it could be read. */
      peer: string | null;
      certSerial: string | null;
      remote: string;
      path: string;
      status: number;
      reason: string;
    }
  | { type: 'link.open'; time: string; linkId: string; connector: string; accepted: string[]; rejected: string[] }
  | { type: 'link.close'; time: string; linkId: string; connector: string; code: number; reason: string }
  | { type: 'policy.reload'; time: string; ok: boolean; source: string | null; error: string | null };

/** AuditRecordType is the `type` of an {@link AuditRecord}. */
export type AuditRecordType = AuditRecord['type'];
