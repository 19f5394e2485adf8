import type { AuditRecord } from '@switchboard/audit';

/**
 * formatAuditRecord writes one audit record as one short line for the demo's narration: seq,
 * type and the fields an auditor looks at first (agent, server, tool, decision, rule). SPIFFE IDs
 * are shown without their `spiffe://<trust domain>/` prefix.
 */
export function formatAuditRecord(r: AuditRecord): string {
  const id = (s: string | null): string => (s === null ? '-' : s.replace(/^spiffe:\/\/[^/]+\//, ''));
  const head = `#${String(r.seq).padEnd(3)} ${r.type.padEnd(14)}`;
  switch (r.type) {
    case 'policy.reload':
      return `${head} ${r.accepted ? 'accepted' : 'REJECTED'} sha256 ${r.fileHash?.slice(0, 12) ?? '-'}…${r.error ? ` (${r.error})` : ''}`;
    case 'link.up':
      return `${head} ${id(r.connector)} serves [${r.servers.join(', ')}]`;
    case 'link.down':
      return `${head} ${id(r.connector)} code ${r.code}`;
    case 'session.open':
      return `${head} ${id(r.agent)} → ${r.server} via ${id(r.connector)}`;
    case 'session.close':
      return `${head} ${id(r.agent)} → ${r.server} code ${r.code} after ${r.durationMs} ms`;
    case 'egress.denied':
      return `${head} ${id(r.agent)} → ${r.server} tried ${r.destination}${r.port === 53 ? ' (DNS lookup)' : `:${r.port}`} → refused by the connector`;
    case 'request':
      return `${head} ${id(r.agent)} → ${r.server} ${r.method} ${r.name ?? ''} → ${r.decision} (rule ${r.ruleId ?? 'none: default deny'})`;
    case 'response':
      return `${head} ${r.server} ${r.name ?? r.method} → ${r.status}${r.errorCode !== undefined ? ` ${r.errorCode}` : ''}, ${r.latencyMs} ms, ${r.bytes} bytes`;
    case 'connection.refused':
      return `${head} ${id(r.peer)} ${r.path} → ${r.status}`;
    case 'checkpoint':
      return `${head} Ed25519 signature over seq 1–${r.coversSeq} (key ${r.keyId})`;
    case 'revocation':
      return `${head} ${id(r.subject)} ${r.certSerial ?? ''} (${r.sessionsClosed} sessions closed)`;
    case 'pin.drift':
      return `${head} ${r.server} ${r.kind} ${r.name} changed`;
    case 'pin.approve':
      return `${head} ${r.server} ${r.kind} ${r.name} approved by ${r.approvedBy}`;
    default:
      return head;
  }
}
