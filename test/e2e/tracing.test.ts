// OpenTelemetry tracing end to end: a real relay and connector with `tracing` set, exporting by
// OTLP/HTTP to a receiver in this test; the SDK Client as the agent; an SDK server that shows the
// `_meta` it received. One trace runs agent → relay → connector → backend: the relay's session and
// call spans, the connector's session and call spans as their children, W3C trace context carried
// in the OPEN frame and in `params._meta.traceparent`, and handed on to the backend.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallToolResultSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { connect } from '@switchboard/agent-sdk';
import { startRelay } from '@switchboard/relay';
import { parseConnectorConfig, startConnector } from '@switchboard/connector';
import { createWorld, ROOT, TD, type World } from './world.js';

const META = join(ROOT, 'test/fixtures/meta-echo-server.mjs');
const ALICE = `spiffe://${TD}/agent/support/alice`;
const POLICY = `
trustDomain: ${TD}
servers:
  traced: { connectors: [spiffe://${TD}/connector/main] }
rules:
  - id: support-traced
    agents: [spiffe://${TD}/agent/support/*]
    servers: [traced]
    tools: { allow: [meta, echo] }
`;

interface OtlpSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  status: { code?: number; message?: string };
  attributes: Record<string, unknown>;
}

let w: World;
let receiver: Server;
let endpoint: string;
const spans: OtlpSpan[] = [];
const contentTypes = new Set<string>();

function attrs(list: { key: string; value: Record<string, unknown> }[] = []): Record<string, unknown> {
  return Object.fromEntries(list.map((a) => [a.key, Object.values(a.value)[0]]));
}

beforeAll(async () => {
  // The OTLP/HTTP receiver: POST /v1/traces with the JSON encoding of ExportTraceServiceRequest.
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      contentTypes.add(String(req.headers['content-type']));
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans: { resource: { attributes: never[] }; scopeSpans: { spans: (Omit<OtlpSpan, 'service' | 'attributes'> & { attributes: never[] })[] }[] }[] };
      for (const rs of body.resourceSpans) {
        const service = String(attrs(rs.resource.attributes)['service.name']);
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service, parentSpanId: s.parentSpanId ?? '', attributes: attrs(s.attributes), status: s.status ?? {} });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces`;

  w = await createWorld(POLICY, { startRelay: false });
  w.relay = await startRelay({
    listen: '127.0.0.1:0',
    identity: join(w.dir, 'ids', 'relay'),
    policy: w.relayPolicyPath,
    audit: { path: w.auditPath, signingKey: 'none' },
    tracing: { otlp: { endpoint }, batchDelayMs: 50 },
  });
  const config = parseConnectorConfig(
    {
      relays: [w.relay.url],
      identity: join(w.dir, 'ids', 'connector'),
      servers: { traced: { command: process.execPath, args: [META] } },
      tracing: { otlp: { endpoint }, batchDelayMs: 50, serviceName: 'connector-east' },
    },
    { baseDir: w.dir },
  );
  w.connector = await startConnector(config, { drainTimeoutMs: 0 });
  await w.connector.ready();
}, 60_000);

afterAll(async () => {
  await w?.close();
  await new Promise<void>((r) => receiver?.close(() => r()));
});

async function spansNamed(name: string, service: string, n: number): Promise<OtlpSpan[]> {
  await expect.poll(() => spans.filter((s) => s.name === name && s.service === service).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(n);
  return spans.filter((s) => s.name === name && s.service === service);
}

describe('OpenTelemetry tracing through relay and connector', () => {
  it('one trace from the relay’s session and call spans to the connector’s, and on to the backend in params._meta', async () => {
    const aliceIds = await w.identity('alice', ALICE);
    const client = await connect({ relay: w.relay.url, server: 'traced', identity: aliceIds });
    const r = await client.callTool({ name: 'meta', arguments: {} });
    const backendMeta = JSON.parse((r.content as { text: string }[])[0]?.text ?? 'null') as { traceparent?: string };

    // The agent's own trace: the relay's call span continues it.
    const agentTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const agentSpan = '00f067aa0ba902b7';
    await client.request({ method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' }, _meta: { traceparent: `00-${agentTrace}-${agentSpan}-01` } } }, CallToolResultSchema);
    // A refused call: a relay span marked as an error, and nothing at the connector.
    await expect(client.request({ method: 'tools/call', params: { name: 'delete_everything', arguments: {} } }, CallToolResultSchema)).rejects.toBeInstanceOf(McpError);
    await client.close();

    const [relaySession] = await spansNamed('mcp.session traced', 'switchboard-relay', 1);
    const [connSession] = await spansNamed('mcp.backend.session traced', 'connector-east', 1);
    const relayCalls = await spansNamed('tools/call meta', 'switchboard-relay', 1);
    const connCalls = await spansNamed('tools/call meta', 'connector-east', 1);
    const relayCall = relayCalls[0] as OtlpSpan;
    const connCall = connCalls[0] as OtlpSpan;

    // One trace: relay session → relay call → connector call → backend; connector session under relay session.
    expect(relaySession?.parentSpanId).toBe('');
    expect(relayCall.traceId).toBe(relaySession?.traceId);
    expect(relayCall.parentSpanId).toBe(relaySession?.spanId);
    expect(connSession?.traceId).toBe(relaySession?.traceId);
    expect(connSession?.parentSpanId).toBe(relaySession?.spanId);
    expect(connCall.traceId).toBe(relaySession?.traceId);
    expect(connCall.parentSpanId).toBe(relayCall.spanId);
    expect(backendMeta.traceparent).toBe(`00-${connCall.traceId}-${connCall.spanId}-01`);

    expect(relayCall.attributes).toMatchObject({ 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'meta', 'switchboard.decision': 'allow', 'switchboard.rule': 'support-traced', 'switchboard.agent': ALICE, 'switchboard.server': 'traced' });
    expect(relayCall.kind).toBe(2); // SERVER
    expect(connCall.kind).toBe(3); // CLIENT
    expect(relaySession?.attributes).toMatchObject({ 'switchboard.connector': `spiffe://${TD}/connector/main`, 'switchboard.close_code': 1000, 'mcp.session.id': expect.stringMatching(/^[0-9a-f]{16}\/\d+$/) });
    expect(relaySession?.status.code ?? 0).toBe(0);

    const [echoRelay] = await spansNamed('tools/call echo', 'switchboard-relay', 1);
    expect(echoRelay?.traceId).toBe(agentTrace);
    expect(echoRelay?.parentSpanId).toBe(agentSpan);
    const [echoConn] = await spansNamed('tools/call echo', 'connector-east', 1);
    expect(echoConn?.parentSpanId).toBe(echoRelay?.spanId);

    const [denied] = await spansNamed('tools/call delete_everything', 'switchboard-relay', 1);
    expect(denied?.status.code).toBe(2); // ERROR
    expect(denied?.status.message).toMatch(/delete_everything/);
    expect(denied?.attributes['switchboard.decision']).toBe('deny');
    expect(spans.some((s) => s.service === 'connector-east' && s.name === 'tools/call delete_everything')).toBe(false);
    expect([...contentTypes]).toEqual(['application/json']);
  });
});
