// /metrics through prom-client: the counters of before, plus histograms (tools/call latency per
// server, session setup, TLS handshakes, audit append and fsync) and decision/response counters,
// scraped from the admin listener and parsed.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditSigningKey, generateAuditKey } from '@switchboard/audit';
import { LATENCY_BUCKETS } from '../../src/metrics.js';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, SUPPORT } from '../helpers/ids.js';
import { startTestRelay, type TestRelay } from '../helpers/relay.js';

let t: TestRelay | undefined;
let h: HarnessConnector | undefined;
let dir: string | undefined;
afterEach(async () => {
  h?.close();
  await t?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  t = undefined;
  h = undefined;
  dir = undefined;
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** parse reads the Prometheus text format (0.0.4): HELP/TYPE lines, then `name{k="v",…} value`. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      types.set(type[1] as string, type[2] as string);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length)?.value;
}

/** histogram checks the shape of one labelled histogram and returns its count and sum. */
function histogram(samples: Sample[], name: string, labels: Record<string, string>): { count: number; sum: number } {
  const buckets = samples.filter((s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  const les = buckets.map((b) => b.labels.le);
  expect(les.at(-1)).toBe('+Inf');
  // Cumulative: each bucket holds at least what the one before holds.
  for (let i = 1; i < buckets.length; i++) expect((buckets[i] as Sample).value).toBeGreaterThanOrEqual((buckets[i - 1] as Sample).value);
  const count = value(samples, `${name}_count`, labels) as number;
  expect((buckets.at(-1) as Sample).value).toBe(count);
  return { count, sum: value(samples, `${name}_sum`, labels) as number };
}

async function scrape(): Promise<{ samples: Sample[]; types: Map<string, string> }> {
  const res = await fetch(`${t?.relay.adminUrl}/metrics`);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

describe('/metrics (prom-client)', () => {
  it('times tools/call per server, session setup and TLS handshakes, and counts decisions and responses by method and code', async () => {
    t = await startTestRelay({ admin: { listen: '127.0.0.1:0' } });
    h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    await agent.call('tools/list');
    for (let i = 0; i < 3; i++) expect((await agent.call('tools/call', { name: 'get_order', arguments: { n: i } })).result).toBeDefined();
    expect((await agent.call('tools/call', { name: 'delete_customer', arguments: {} })).error.code).toBe(-32602);
    expect((await agent.call('tools/call', { name: 'lookup_customer', arguments: {} })).result).toBeDefined();

    const { samples, types } = await scrape();
    expect(types.get('switchboard_relay_tool_call_duration_seconds')).toBe('histogram');
    const calls = histogram(samples, 'switchboard_relay_tool_call_duration_seconds', { server: 'crm', status: 'ok' });
    expect(calls.count).toBe(4);
    expect(calls.sum).toBeGreaterThan(0);
    expect(samples.filter((s) => s.name === 'switchboard_relay_tool_call_duration_seconds_bucket' && s.labels.status === 'ok').map((s) => s.labels.le)).toEqual([
      ...LATENCY_BUCKETS.map(String),
      '+Inf',
    ]);
    expect(histogram(samples, 'switchboard_relay_session_setup_seconds', { result: 'ok' }).count).toBe(1);
    // The connector's link and the agent's session: two handshakes on the main listener.
    expect(histogram(samples, 'switchboard_relay_tls_handshake_seconds', { listener: 'main' }).count).toBe(2);
    expect(value(samples, 'switchboard_relay_decisions_total', { decision: 'allow', method: 'tools/call' })).toBe(4);
    expect(value(samples, 'switchboard_relay_decisions_total', { decision: 'deny', method: 'tools/call' })).toBe(1);
    expect(value(samples, 'switchboard_relay_responses_total', { method: 'tools/call', status: 'ok', code: '' })).toBe(4);
    // The counters of before keep their names and labels.
    expect(value(samples, 'switchboard_relay_sessions_open')).toBe(1);
    expect(value(samples, 'switchboard_relay_links_up')).toBe(1);
    expect(value(samples, 'switchboard_relay_messages_denied_total', { reason: 'tool_denied' })).toBe(1);
    expect(types.get('switchboard_relay_messages_denied_total')).toBe('counter');
    expect(types.get('switchboard_relay_sessions_open')).toBe('gauge');

    // A method a peer made up is counted as "other": the label set stays bounded.
    await agent.call('x-vendor/whatever', {});
    const after = (await scrape()).samples;
    expect(value(after, 'switchboard_relay_decisions_total', { decision: 'deny', method: 'other' })).toBe(1);
    expect(after.some((s) => s.labels.method === 'x-vendor/whatever')).toBe(false);
  });

  it('times the strict audit append a call waits for, and the trail’s writes and fsyncs', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-metrics-'));
    t = await startTestRelay({
      admin: { listen: '127.0.0.1:0' },
      audit: { path: join(dir, 'audit.log'), durability: 'strict', signingKey: AuditSigningKey.fromPem(generateAuditKey().privateKeyPem) },
    });
    h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    for (let i = 0; i < 3; i++) await agent.call('tools/call', { name: 'get_order', arguments: {} });
    const { samples } = await scrape();
    // Each call's request record gates its forwarding: three appends waited for.
    expect(histogram(samples, 'switchboard_relay_audit_append_seconds', {}).count).toBe(3);
    const syncs = histogram(samples, 'switchboard_relay_audit_fsync_seconds', {});
    const writes = histogram(samples, 'switchboard_relay_audit_write_seconds', {});
    expect(syncs.count).toBeGreaterThanOrEqual(3);
    expect(writes.count).toBe(syncs.count);
    expect(value(samples, 'switchboard_relay_audit_syncs_total')).toBe(syncs.count);
  });
});
