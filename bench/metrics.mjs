// The cost of the metrics on the hot path, measured in this run. Per tools/call the relay counts
// the request's decision and the response (code, and the latency histogram observation) from the
// audit records, and the connector parses the request for its id, remembers when it left and
// observes the backend latency when the answer comes. Each step is timed here with the real
// RelayMetrics and ConnectorMetrics, over many iterations, and set against the tools/call p50
// through a real relay and connector in the same run. Scraping /metrics is timed too (not on
// the call path).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ms, now, oneLine, quantile, serverCommand, writeIdentities } from './lib/processes.mjs';

const TD = 'example.org';
const AGENT_ID = `spiffe://${TD}/agent/bench`;
const CONNECTOR_ID = `spiffe://${TD}/connector/bench`;

/** perOp runs `fn` `n` times (after a warm-up) and returns the mean ns per run, best of 5 rounds. */
function perOp(n, fn) {
  for (let i = 0; i < Math.min(n, 10_000); i++) fn(i);
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = now();
    for (let i = 0; i < n; i++) fn(i);
    best = Math.min(best, Number(now() - t0) / n);
  }
  return best;
}

/** benchMetrics measures the per-call cost of the relay's and the connector's metrics. */
export async function benchMetrics({ quick = false } = {}) {
  const opts = quick ? { iterations: 20_000, calls: 300 } : { iterations: 300_000, calls: 3000 };
  const out = { opts };
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-metrics-'));
  let relay;
  let connector;
  try {
    const { RelayMetrics, startRelay } = await import('@switchboard/relay');
    const { ConnectorMetrics, parseConnectorConfig, startConnector } = await import('@switchboard/connector');
    const sdk = await import('@switchboard/agent-sdk');
    const { createTestCA } = await import('@switchboard/pki/testing');

    // The relay's share: a request record and its response record, as the audit sink builds them.
    const rm_ = new RelayMetrics();
    const request = { type: 'request', sessionId: 'abc/1', server: 'crm', agent: AGENT_ID, direction: 'agent-to-server', requestId: '7', method: 'tools/call', name: 'get_order', decision: 'allow', ruleId: 'r', reason: 'ok', argsDigest: 'x'.repeat(64) };
    const response = { type: 'response', sessionId: 'abc/1', server: 'crm', agent: AGENT_ID, requestId: '7', method: 'tools/call', name: 'get_order', status: 'ok', latencyMs: 0.42, bytes: 120, redactions: {} };
    out.relayNs = perOp(opts.iterations, () => {
      rm_.recorded(request);
      rm_.recorded(response);
    });
    // The connector's share: parse the request for its id, remember it, observe the answer.
    const cm = new ConnectorMetrics({ links: () => [], counters: () => ({}) }, []);
    const data = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'get_order', arguments: { id: 'A-1042', verbose: false } } }));
    const timed = new Map();
    out.connectorNs = perOp(opts.iterations, (i) => {
      const m = JSON.parse(data.toString('utf8'));
      const key = `n${m.id}${i & 1023}`;
      timed.set(key, performance.now());
      const t0 = timed.get(key);
      timed.delete(key);
      cm.answered('crm', (performance.now() - t0) / 1000, true);
    });
    out.observeNs = perOp(opts.iterations, (i) => cm.answered('crm', (i % 100) / 1e5, true));

    // The reference: tools/call p50 through a real relay and connector, in this run.
    const ca = await createTestCA({ trustDomain: TD });
    const ids = await writeIdentities(ca, dir, [['relay', `spiffe://${TD}/relay/bench`], ['connector', CONNECTOR_ID], ['agent', AGENT_ID]]);
    const policy = join(dir, 'policy.yaml');
    await writeFile(policy, `trustDomain: ${TD}\nservers:\n  echo: { connectors: [${CONNECTOR_ID}], pinning: { mode: off } }\nrules:\n  - id: bench\n    agents: [${AGENT_ID}]\n    servers: [echo]\n    tools: { allow: [echo] }\n`);
    relay = await startRelay({ listen: '127.0.0.1:0', identity: ids.relay, policy, audit: { path: join(dir, 'audit.log'), durability: 'batched', signingKey: 'none' }, admin: { listen: '127.0.0.1:0' } });
    const fixture = await serverCommand(dir);
    const config = parseConnectorConfig({ relays: [relay.url], identity: ids.connector, servers: { echo: { command: process.execPath, args: fixture.args, egress: 'any', filesystem: 'any' } }, admin: { listen: '127.0.0.1:0' } }, { baseDir: dir });
    connector = await startConnector(config, { drainTimeoutMs: 0 });
    await connector.ready();
    const client = await sdk.connect({ relay: relay.url, server: 'echo', identity: ids.agent });
    const calls = [];
    for (let i = 0; i < opts.calls; i++) {
      const t0 = now();
      await client.callTool({ name: 'echo', arguments: { text: 'x' } });
      calls.push(ms(now() - t0));
    }
    await client.close();
    calls.sort((a, b) => a - b);
    out.callP50 = quantile(calls, 0.5);
    const scrapes = [];
    for (let i = 0; i < (quick ? 10 : 100); i++) {
      const t0 = now();
      await relay.prometheus();
      scrapes.push(ms(now() - t0));
    }
    out.scrapeP50 = quantile(scrapes.sort((a, b) => a - b), 0.5);
    out.scrapeBytes = Buffer.byteLength(await relay.prometheus());
    out.histogramCount = Number(/switchboard_relay_tool_call_duration_seconds_count\{server="echo",status="ok"\} (\d+)/.exec(await relay.prometheus())?.[1] ?? 0);
  } catch (err) {
    out.error = oneLine(err);
  } finally {
    await connector?.close().catch(() => undefined);
    await relay?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

/** printMetrics prints the per-call cost of the metrics against the tools/call p50 (goal: ≤ 1 % of it). */
export function printMetrics(r) {
  console.log('');
  console.log('## Metrics on the hot path (prom-client)');
  console.log('');
  if (r.error) return console.log(`failed: ${r.error}`);
  const perCallUs = (r.relayNs + r.connectorNs) / 1000;
  const share = perCallUs / (r.callP50 * 1000);
  console.log(`Per tools/call, timed over ${r.opts.iterations} iterations (best of 5), against ${r.opts.calls} calls through a real relay and connector:`);
  console.log('');
  console.log('| step | cost |');
  console.log('|---|---:|');
  console.log(`| relay: decision + response counters + latency histogram (from the two audit records) | ${(r.relayNs / 1000).toFixed(3)} µs |`);
  console.log(`| connector: parse the request for its id, remember it, observe the backend latency | ${(r.connectorNs / 1000).toFixed(3)} µs |`);
  console.log(`| of which one histogram observation (labelled child) | ${(r.observeNs / 1000).toFixed(3)} µs |`);
  console.log(`| tools/call p50 through the tunnel, this run | ${(r.callP50 * 1000).toFixed(1)} µs |`);
  console.log(`| scrape /metrics (${r.scrapeBytes} bytes), p50 | ${(r.scrapeP50 * 1000).toFixed(0)} µs |`);
  console.log('');
  console.log(`the relay's tools/call histogram counted ${r.histogramCount} of the ${r.opts.calls} calls (it must count each once)`);
  console.log('');
  console.log('Goals:');
  console.log(`- metrics cost per tools/call ≤ 1 % of its p50: ${perCallUs.toFixed(3)} µs = ${(share * 100).toFixed(2)} % → ${share <= 0.01 ? 'met' : 'NOT met'}`);
}
