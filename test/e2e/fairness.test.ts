// Fairness on one relay, one connector link and one connector: agent A keeps thousands of calls in
// flight; agent B, on the same link, is answered all along instead of waiting behind A's backlog.
// Per-session flow-control windows (docs/protocol.md) bound what A may have on the link at once,
// and the relay's per-session turns (at most TURN_BUDGET messages per session per event-loop turn)
// keep A's burst from holding B: B's messages interleave with A's. 3000 echo calls fit in one
// window, so without the turns B waited behind most of A's backlog. No wall time is asserted: the
// outcome is the order of answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@switchboard/agent-sdk';
import { createWorld, EVERYTHING, TD, type World } from './world.js';

const POLICY = `trustDomain: ${TD}
servers:
  everything: { connectors: [spiffe://${TD}/connector/main] }
rules:
  - id: echo
    agents: [spiffe://${TD}/agent/*]
    servers: [everything]
    tools: { allow: [echo] }
`;

let w: World;
beforeAll(async () => {
  w = await createWorld(POLICY);
  await w.startConnector({ everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } });
  await w.connector!.ready();
}, 60_000);
afterAll(async () => {
  await w?.close();
});

describe('one agent with thousands of calls in flight does not starve another', () => {
  it('agent B finishes 20 calls on the same link while agent A still has most of its 3000 calls outstanding', async () => {
    const a = await connect({ relay: w.relay.url, server: 'everything', identity: await w.identity('a', `spiffe://${TD}/agent/flood`) });
    const b = await connect({ relay: w.relay.url, server: 'everything', identity: await w.identity('b', `spiffe://${TD}/agent/quiet`) });
    expect(w.relay.metrics().linksUp).toBe(1);
    const N = 3000;
    let answeredA = 0;
    const flood = Array.from({ length: N }, (_, i) =>
      a.callTool({ name: 'echo', arguments: { message: `a${i}` } }, undefined, { timeout: 60_000 }).then((r) => {
        answeredA++;
        return (r.content as { text: string }[])[0]?.text;
      }),
    );
    const seen: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await b.callTool({ name: 'echo', arguments: { message: `b${i}` } }, undefined, { timeout: 60_000 });
      expect(r.content).toEqual([{ type: 'text', text: `Echo: b${i}` }]);
      seen.push(answeredA);
    }
    // B was served while A's backlog was still being worked through, not after it.
    expect(seen.at(-1)).toBeLessThan(N / 2);
    const texts = await Promise.all(flood);
    expect(texts).toEqual(Array.from({ length: N }, (_, i) => `Echo: a${i}`));
    expect(w.relay.metrics().messagesDenied.too_many_in_flight).toBe(0);
    await a.close();
    await b.close();
  }, 120_000);
});
