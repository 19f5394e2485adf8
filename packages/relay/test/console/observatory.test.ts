// The observatory: what the console shows, read from audit records as they are built.
import { describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../src/audit/sink.js';
import { Observatory, RECENT_EVENTS } from '../../src/console/observatory.js';

const AGENT = 'spiffe://example.org/agent/a';
const open = { type: 'session.open', sessionId: 'l1/1', server: 'crm', agent: AGENT, connector: 'spiffe://example.org/connector/c', agentCertSerial: 'AA', connectorCertSerial: 'BB' };
const call = (decision: 'allow' | 'deny', reason = 'ok', method = 'tools/call') => ({
  type: 'request', sessionId: 'l1/1', server: 'crm', agent: AGENT, direction: 'agent-to-server', requestId: '1', method, name: 'x', decision, ruleId: null, reason, argsDigest: null, args: { secret: 'hunter2' },
});

describe('Observatory', () => {
  it('counts calls and denials per live session, rate-limit trips, egress denials and drifts; forgets closed sessions', () => {
    const o = new Observatory();
    const sink = o.tap(new MemoryAuditSink());
    sink.write(open as never);
    sink.write(() => call('allow') as never);
    sink.write(call('deny', 'rate limit of rule "r" (2 calls per 1000 ms) reached; retry after 400 ms') as never);
    sink.write(call('deny', 'no rule allows x') as never);
    sink.write(call('allow', 'ok', 'tools/list') as never);
    sink.write({ type: 'egress.denied', sessionId: 'l1/1', server: 'crm', agent: AGENT, connector: 'c', destination: 'exfil.example', port: 443, reason: 'no rule allows it' } as never);
    sink.write({ type: 'pin.drift', server: 'crm', connector: 'c', kind: 'tool', name: 'x', pinnedHash: 'a', observedHash: 'b' } as never);
    expect(o.sessions()).toEqual([expect.objectContaining({ sessionId: 'l1/1', server: 'crm', agent: AGENT, calls: 2, denials: 2 })]);
    expect(o.counts).toEqual({ allowed: 2, denied: 2, rateLimited: 1, egressDenied: 1, drifts: 1 });
    // The stream carries what matters: not the routine list, and never the stored arguments.
    expect(o.recent().map((e) => `${e.type}:${String(e.method ?? '')}:${String(e.decision ?? '')}`)).toEqual([
      'session.open::', 'request:tools/call:allow', 'request:tools/call:deny', 'request:tools/call:deny', 'egress.denied::', 'pin.drift::',
    ]);
    expect(JSON.stringify(o.recent())).not.toContain('hunter2');
    sink.write({ type: 'session.close', sessionId: 'l1/1', server: 'crm', agent: AGENT, connector: 'c', code: 1000, reason: '', durationMs: 5 } as never);
    expect(o.sessions()).toEqual([]);
  });

  it('keeps a bounded ring of events, resumable after an id', () => {
    const o = new Observatory();
    const seen: number[] = [];
    o.subscribe((e) => seen.push(e.id));
    for (let i = 0; i < RECENT_EVENTS + 50; i++) o.record({ type: 'policy.reload', accepted: true, file: 'p', fileHash: 'h', error: null } as never);
    expect(o.recent()).toHaveLength(RECENT_EVENTS);
    expect(o.recent()[0]?.id).toBe(51);
    expect(o.recent(10, RECENT_EVENTS + 45).map((e) => e.id)).toEqual([546, 547, 548, 549, 550]);
    expect(seen).toHaveLength(RECENT_EVENTS + 50);
  });
});
