import { afterEach, describe, expect, it } from 'vitest';
import { parseConnectorConfig, startConnector } from '../src/index.js';
import { until } from './harness/relay-harness.js';
import { ECHO_SERVER, setup } from './harness/setup.js';
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
