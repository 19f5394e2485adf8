import { afterEach, describe, expect, it } from 'vitest';
import { parseConnectorConfig, startConnector } from '../src/index.js';
import { until } from './harness/relay-harness.js';
import { ECHO_SERVER, setup } from './harness/setup.js';

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
