import { performance } from 'node:perf_hooks';
import { digestArguments, sha256Hex, type AuditRequest, type AuditResponse } from '@switchboard/audit';
import type { AuditSink } from '../audit/sink.js';
import type { PeerIdentity } from '../auth/peer-auth.js';
import type { RequestKey } from '../message/jsonrpc.js';
import type { RequestParams } from '../message/request-params.js';
import { JsonType, spanRaw, type MessageShape } from '../message/strict-json.js';
import type { Decision } from '../policy/document.js';

const MAX_NAME = 256;
const MAX_REASON = 512;
const NO_REDACTIONS: Readonly<Record<string, number>> = Object.freeze({});

/** clip bounds a peer-chosen string before it goes into a record. */
export function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}

/**
 * argumentsDigest returns the `argsDigest` of a request: SHA-256 of the canonical JSON of
 * `params.arguments` ({@link digestArguments}), or null when there are none. It digests the very
 * arguments enforcement parsed (parsing them now if enforcement did not need them); the
 * arguments themselves are never kept. A value canonical JSON cannot hold (a lone surrogate, a
 * number beyond double range) is digested as its JSON text instead, marked `json:<hex>`.
 */
export function argumentsDigest(params: RequestParams | null): string | null {
  const args = params?.arguments;
  if (args === undefined) return null;
  try {
    return digestArguments(args);
  } catch {
    return `json:${sha256Hex(JSON.stringify(args))}`;
  }
}

interface Outstanding {
  readonly requestId: string;
  readonly method: string;
  readonly name: string | null;
  readonly t0: number;
}

/**
 * SessionAudit writes the audit records of one agent session (docs/audit.md): `session.open`, one
 * `request` per decided request (either direction), one `response` per forwarded agent request it
 * recorded (`aborted` when the session ends or the request is cancelled first), `session.close`.
 */
export class SessionAudit {
  /** sessionId names the session in records: `<linkId>/<n>`, unique within the relay's lifetime. */
  readonly sessionId: string;
  private readonly sink: AuditSink;
  private readonly server: string;
  private readonly agent: PeerIdentity;
  private readonly agentId: string;
  private readonly connector: PeerIdentity;
  private readonly linkId: string;
  private readonly startedAt = Date.now();
  private readonly outstanding = new Map<RequestKey, Outstanding>();

  constructor(sink: AuditSink, init: { linkId: string; sessionNumber: number; server: string; agent: PeerIdentity; connector: PeerIdentity }) {
    this.sink = sink;
    this.linkId = init.linkId;
    this.sessionId = `${init.linkId}/${init.sessionNumber}`;
    this.server = init.server;
    this.agent = init.agent;
    this.agentId = init.agent.id.toString();
    this.connector = init.connector;
  }

  /** opened writes `session.open`. */
  opened(): void {
    this.sink.write({ type: 'session.open', ...this.sessionFields() });
  }

  /** resumed writes `session.resume`: this session re-attached the backend session `resumeId` names. */
  resumed(resumeId: string): void {
    this.sink.write({ type: 'session.resume', ...this.sessionFields(), resumeId });
  }

  /** egressDenied writes `egress.denied`: the connector refused a destination this session's server asked for. */
  egressDenied(destination: string, port: number, reason: string): void {
    this.sink.write({ type: 'egress.denied', sessionId: this.sessionId, server: this.server, agent: this.agentId, connector: this.connector.id.toString(), destination, port, reason });
  }

  private sessionFields() {
    return {
      sessionId: this.sessionId,
      server: this.server,
      agent: this.agentId,
      connector: this.connector.id.toString(),
      agentCertSerial: this.agent.certSerial,
      connectorCertSerial: this.connector.certSerial,
      linkId: this.linkId,
    };
  }

  /**
   * request records one decision on a request. For an allowed agent→server request it also
   * starts waiting for its response, and in `strict` mode returns the append to wait for before
   * forwarding (undefined otherwise: forward at once). The arguments' digest is computed when the
   * record is built: at once for a record the call waits on, otherwise after the forward.
   */
  request(
    direction: AuditRequest['direction'],
    key: RequestKey,
    idRaw: string,
    method: string,
    name: string | null,
    d: Decision,
    params: RequestParams | null,
  ): Promise<unknown> | undefined {
    const requestId = clip(idRaw, MAX_NAME);
    const clipped = name === null ? null : clip(name, MAX_NAME);
    const record: AuditRequest = {
      type: 'request',
      sessionId: this.sessionId,
      server: this.server,
      agent: this.agentId,
      direction,
      requestId,
      method: clip(method, MAX_NAME),
      name: clipped,
      decision: d.allow ? 'allow' : 'deny',
      ruleId: d.ruleId ?? null,
      reason: clip(d.reason, MAX_REASON),
      argsDigest: null,
    };
    if (d.allow && direction === 'agent-to-server') {
      this.outstanding.set(key, { requestId, method: record.method, name: clipped, t0: performance.now() });
      if (this.sink.durability === 'strict') {
        record.argsDigest = argumentsDigest(params);
        return this.sink.append(record);
      }
    }
    if (params === null) this.sink.write(record);
    else
      this.sink.write(() => {
        record.argsDigest = argumentsDigest(params);
        return record;
      });
    return undefined;
  }

  /**
   * responded records the response to a recorded request (`buf` is the scanned server message).
   * `bytes` is the size forwarded to the agent; `redactions` counts redacted values per kind.
   */
  responded(key: RequestKey, buf: Buffer, shape: MessageShape, bytes: number, redactions: Record<string, number> = NO_REDACTIONS): void {
    if (this.outstanding.size === 0) return;
    const o = this.outstanding.get(key);
    if (o === undefined) return;
    this.outstanding.delete(key);
    let errorCode: number | undefined;
    if (shape.error.type === JsonType.OBJECT) {
      const code = (JSON.parse(spanRaw(buf, shape.error)) as { code?: unknown }).code;
      if (typeof code === 'number' && Number.isSafeInteger(code)) errorCode = code;
    }
    this.writeResponse(o, shape.error.present ? 'error' : 'ok', errorCode, bytes, redactions);
  }

  /** aborted records that a recorded request will get no response (cancelled, or refused after all). */
  aborted(key: RequestKey): void {
    const o = this.outstanding.get(key);
    if (o === undefined) return;
    this.outstanding.delete(key);
    this.writeResponse(o, 'aborted', undefined, 0, NO_REDACTIONS);
  }

  /** forget drops a recorded request without a response record (it was never forwarded). */
  forget(key: RequestKey): void {
    this.outstanding.delete(key);
  }

  /** closed records `aborted` for every request still waiting, then `session.close`. */
  closed(code: number, reason: string): void {
    for (const o of this.outstanding.values()) this.writeResponse(o, 'aborted', undefined, 0, NO_REDACTIONS);
    this.outstanding.clear();
    this.sink.write({
      type: 'session.close',
      sessionId: this.sessionId,
      server: this.server,
      agent: this.agentId,
      connector: this.connector.id.toString(),
      code,
      reason: clip(reason, MAX_REASON),
      durationMs: Date.now() - this.startedAt,
    });
  }

  private writeResponse(o: Outstanding, status: AuditResponse['status'], errorCode: number | undefined, bytes: number, redactions: Record<string, number>): void {
    const record: AuditResponse = {
      type: 'response',
      sessionId: this.sessionId,
      server: this.server,
      agent: this.agentId,
      requestId: o.requestId,
      method: o.method,
      name: o.name,
      status,
      latencyMs: Math.round((performance.now() - o.t0) * 1000) / 1000,
      bytes,
      redactions,
    };
    if (errorCode !== undefined) record.errorCode = errorCode;
    this.sink.write(record);
  }
}
