import { CloseCode, FrameType, type Frame } from '@switchboard/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { startConnector, type Connector } from '../../src/index.js';
import type { HarnessLink } from '../harness/relay-harness.js';
import { until } from '../harness/relay-harness.js';
import { alive, call, echoConfig, INIT, INITIALIZED, setup, type Setup } from '../harness/setup.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function withSession(): Promise<Setup & { connector: Connector; link: HarnessLink; pid: number }> {
  const s = await setup();
  cleanup.push(() => s.harness.close());
  const connector = await startConnector(echoConfig([s.harness.url], s.identity));
  cleanup.push(() => connector.close({ drainTimeoutMs: 0 }));
  await connector.ready();
  const link = await s.harness.link(1);
  link.open(1, 'echo');
  await link.frame((f) => f.type === FrameType.OPEN_OK);
  link.data(1, INIT);
  await link.json(1, (m) => m.id === 1);
  link.data(1, INITIALIZED);
  link.data(1, call(2, 'pid'));
  const r = await link.json(1, (m) => m.id === 2);
  const pid = Number((r.result as { content: { text: string }[] }).content[0]?.text);
  return { ...s, connector, link, pid };
}

describe('graceful shutdown', () => {
  it('sends GOAWAY, keeps serving open sessions until they end, then closes the link with 1001', async () => {
    const { connector, link, pid } = await withSession();
    const closing = connector.close({ drainTimeoutMs: 10_000 });
    const goaway = (await link.frame((f) => f.type === FrameType.GOAWAY)) as Extract<Frame, { type: 0x03 }>;
    expect(goaway.payload.code).toBe(CloseCode.GOING_AWAY);
    link.data(1, call(3, 'echo', { text: 'still draining' }));
    expect((await link.json(1, (m) => m.id === 3)).result).toMatchObject({ content: [{ text: 'still draining' }] });
    // No new sessions on a draining link.
    link.open(2, 'echo');
    const fail = (await link.frame((f) => f.type === FrameType.OPEN_FAIL && f.sessionId === 2)) as Extract<Frame, { type: 0x12 }>;
    expect(fail.payload.code).toBe(CloseCode.NO_CONNECTOR);
    link.closeSession(1);
    await closing;
    expect((await link.whenClosed()).code).toBe(CloseCode.GOING_AWAY);
    expect(link.frames.some((f) => f.type === FrameType.CLOSE && f.sessionId === 1)).toBe(false);
    await until(() => !alive(pid), 8000, 'backend exit');
    await expect(connector.wait()).resolves.toBeUndefined();
    expect(connector.links()[0]?.state).toBe('stopped');
  });

  it('closes sessions still open after the drain timeout with 4509', async () => {
    const { connector, link, pid } = await withSession();
    const t0 = Date.now();
    await connector.close({ drainTimeoutMs: 200 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    const close = (await link.frame((f) => f.type === FrameType.CLOSE && f.sessionId === 1)) as Extract<Frame, { type: 0x30 }>;
    expect(close.payload.code).toBe(CloseCode.LINK_LOST);
    expect((await link.whenClosed()).code).toBe(CloseCode.GOING_AWAY);
    await until(() => !alive(pid), 8000, 'backend exit');
  });

  it('does not redial after close()', async () => {
    const { connector, harness } = await withSession();
    await connector.close({ drainTimeoutMs: 0 });
    await new Promise((r) => setTimeout(r, 300));
    expect(harness.connections).toBe(1);
  });
});
