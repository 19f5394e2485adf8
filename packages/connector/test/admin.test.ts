import { afterEach, describe, expect, it } from 'vitest';
import { parseConnectorConfig, startConnector } from '../src/index.js';
import { until } from './harness/relay-harness.js';
import { call, ECHO_SERVER, INIT, INITIALIZED, setup } from './harness/setup.js';
import { FrameType } from '@switchboard/protocol';
import { request as httpRequest } from 'node:http';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

describe('admin listener', () => {
  it('serves /healthz, /readyz and /metrics on loopback only', async () => {
    const { harness, identity } = await setup();
    cleanup.push(() => harness.close());
    const config = parseConnectorConfig({ relays: [harness.url], identity, servers: { echo: { command: process.execPath, args: [ECHO_SERVER] } }, admin: { listen: '127.0.0.1:0' } });
    const connector = await startConnector(config, { drainTimeoutMs: 0 });
    cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
    const addr = connector.adminAddress;
    expect(addr?.host).toBe('127.0.0.1');
    const base = `http://127.0.0.1:${addr?.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await connector.ready();
    await until(() => connector.links()[0]?.state === 'up');
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain(`switchboard_connector_link_up{relay="${harness.url}"} 1`);
    expect(metrics).toContain('# TYPE switchboard_connector_reconnects_total counter');
    expect(metrics).toMatch(/switchboard_connector_sessions_opened_total 0/);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/healthz`, { method: 'POST' })).status).toBe(405);
    // DNS rebinding: a page on attacker.example whose name now resolves to 127.0.0.1 sends its own
    // Host; a cross-site request carries its Origin. Neither reads the metrics.
    const port = new URL(base).port;
    expect(await getWith(`${base}/metrics`, { host: `attacker.example:${port}` })).toEqual({ status: 403, body: 'forbidden: unexpected Host header\n' });
    expect(await getWith(`${base}/metrics`, { host: `127.0.0.1:${port}`, origin: 'http://attacker.example' })).toEqual({ status: 403, body: 'forbidden: cross-origin request\n' });
    expect((await getWith(`${base}/metrics`, { host: `localhost:${port}` })).status).toBe(200);
  });

  it('/metrics (prom-client) times backend start and each request to the backend, per server', async () => {
    const { harness, identity } = await setup();
    cleanup.push(() => harness.close());
    const config = parseConnectorConfig({ relays: [harness.url], identity, servers: { echo: { command: process.execPath, args: [ECHO_SERVER], egress: 'any', filesystem: 'any' } }, admin: { listen: '127.0.0.1:0' } });
    const connector = await startConnector(config, { drainTimeoutMs: 0 });
    cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
    await connector.ready();
    const link = await harness.link(1);
    link.open(1, 'echo');
    await link.frame((f) => f.type === FrameType.OPEN_OK);
    link.data(1, INIT);
    await link.json(1, (m) => m.id === 1);
    link.data(1, INITIALIZED);
    link.data(1, call(2, 'echo', { text: 'a' }));
    await link.json(1, (m) => m.id === 2);
    link.data(1, call('three', 'echo', { text: 'b' }));
    await link.json(1, (m) => m.id === 'three');
    link.data(1, { jsonrpc: '2.0', id: 4, method: 'no/such/method' });
    await link.json(1, (m) => m.id === 4);
    const text = await (await fetch(`http://127.0.0.1:${connector.adminAddress?.port}/metrics`)).text();
    const sample = (line: string): number => Number(new RegExp(`^${line.replace(/[{}"+.]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(text).toContain('# TYPE switchboard_connector_backend_start_seconds histogram');
    expect(sample('switchboard_connector_backend_start_seconds_count{server="echo",result="ok"}')).toBe(1);
    expect(sample('switchboard_connector_backend_start_seconds_bucket{le="+Inf",server="echo",result="ok"}')).toBe(1);
    expect(sample('switchboard_connector_backend_start_seconds_sum{server="echo",result="ok"}')).toBeGreaterThan(0);
    // initialize, two calls (a number id and a string id): answered; the unknown method: an error answer.
    expect(sample('switchboard_connector_backend_request_seconds_count{server="echo",status="ok"}')).toBe(3);
    expect(sample('switchboard_connector_backend_request_seconds_count{server="echo",status="error"}')).toBe(1);
    expect(sample('switchboard_connector_sessions_opened_total')).toBe(1);
    expect(sample('switchboard_connector_egress_denied_total')).toBe(0);
    expect(text).toContain('# TYPE switchboard_connector_egress_denied_total counter');
  });

  it('/readyz is 503 while no link is up', async () => {
    const { identity } = await setup();
    const config = parseConnectorConfig({ relays: ['wss://127.0.0.1:1'], identity, servers: { echo: { command: 'node' } }, admin: { listen: 'localhost:0' } });
    const connector = await startConnector(config, { drainTimeoutMs: 0, backoff: { baseMs: 10, capMs: 20 } });
    cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
    const res = await fetch(`http://127.0.0.1:${connector.adminAddress?.port}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('no relay link is up\n');
  });
});

/** getWith fetches `url` with the headers a browser on another site would send (fetch cannot set Host). */
function getWith(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
