import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { ALONE_BUDGET, CONTENDED_MS, TURN_BUDGET, TurnGroup, TurnQueue } from '../../src/session/turns.js';

// Each message "weighs" 10 bytes; the producer is held above 25 waiting (3 messages or more).
// With `contended` (the default), another session has just had a message: the budget is TURN_BUDGET.
function recorder(aboveBytes = 25, contended = true) {
  const handled: number[] = [];
  const backlog: boolean[] = [];
  const q = new TurnQueue<number>((m) => handled.push(m), { aboveBytes, bytes: () => 10, on: (held) => backlog.push(held) });
  if (contended) otherSession().push(0);
  return { q, handled, backlog };
}

function otherSession(): TurnQueue<number> {
  return new TurnQueue<number>(() => undefined, undefined, new TurnGroup());
}

describe('TurnQueue: a session handles at most TURN_BUDGET messages per event-loop turn while others have messages', () => {
  it('handles a burst a budget at a time, in order, and reports the backlog once each way', async () => {
    const { q, handled, backlog } = recorder();
    const n = TURN_BUDGET * 2 + 1;
    for (let i = 0; i < n; i++) q.push(i);
    expect(handled).toEqual(Array.from({ length: TURN_BUDGET }, (_, i) => i));
    expect(q.waiting).toBe(n - TURN_BUDGET);
    expect(backlog).toEqual([true]);
    await nextTurn();
    expect(handled).toHaveLength(TURN_BUDGET * 2);
    await nextTurn();
    expect(handled).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(q.waiting).toBe(0);
    expect(backlog).toEqual([true, false]);
  });

  it('queues behind a backlog even when the budget has room (order is kept)', async () => {
    const { q, handled } = recorder();
    for (let i = 0; i < TURN_BUDGET + 2; i++) q.push(i);
    await nextTurn();
    // A new turn handled the two waiting; one more push now comes after them.
    q.push(99);
    expect(handled.slice(-3)).toEqual([TURN_BUDGET, TURN_BUDGET + 1, 99]);
  });

  it('does not hold the producer for a backlog at or under aboveBytes', async () => {
    const { q, handled, backlog } = recorder(30);
    for (let i = 0; i < TURN_BUDGET + 3; i++) q.push(i);
    expect(q.waiting).toBe(3);
    await nextTurn();
    expect(handled).toHaveLength(TURN_BUDGET + 3);
    expect(backlog).toEqual([]);
    for (let i = 0; i < TURN_BUDGET * 2 + 1; i++) q.push(i);
    expect(q.waiting).toBe(TURN_BUDGET + 1);
    expect(backlog).toEqual([true]);
    await nextTurn();
    // One still waits (under the mark, not empty): reading resumes once the backlog is gone.
    expect(q.waiting).toBe(1);
    expect(backlog).toEqual([true]);
    await nextTurn();
    expect(backlog).toEqual([true, false]);
    expect(q.waiting).toBe(0);
  });

  it('gives a fresh budget each turn to a session that never has a backlog', async () => {
    const { q, handled, backlog } = recorder();
    for (let turn = 0; turn < 3; turn++) {
      for (let i = 0; i < TURN_BUDGET; i++) q.push(turn * 100 + i);
      expect(q.waiting).toBe(0);
      await nextTurn();
    }
    expect(handled).toHaveLength(TURN_BUDGET * 3);
    expect(backlog).toEqual([]);
  });

  it('prepend puts held messages ahead of what waits; flush handles everything now; end drops the rest', async () => {
    const { q, handled, backlog } = recorder();
    for (let i = 0; i < TURN_BUDGET + 2; i++) q.push(i);
    q.prepend([-2, -1]);
    q.flush();
    expect(handled).toEqual([...Array.from({ length: TURN_BUDGET }, (_, i) => i), -2, -1, TURN_BUDGET, TURN_BUDGET + 1]);
    expect(backlog).toEqual([true, false]);
    for (let i = 0; i < TURN_BUDGET + 3; i++) q.push(1000 + i);
    q.end();
    q.push(5000);
    await nextTurn();
    await nextTurn();
    expect(handled.filter((m) => m >= 1000)).toEqual([]);
    expect(q.waiting).toBe(0);
  });

  it('takes ALONE_BUDGET while no other session has had a message for CONTENDED_MS, and TURN_BUDGET from the next turn after one has', async () => {
    await sleep(CONTENDED_MS + 20);
    const { q, handled } = recorder(1_000_000, false);
    const n = ALONE_BUDGET * 3;
    for (let i = 0; i < n; i++) q.push(i);
    expect(handled).toHaveLength(ALONE_BUDGET);
    await nextTurn();
    expect(handled).toHaveLength(ALONE_BUDGET * 2);
    // Another session's message: it is handled at once (its own budget), and ours shrinks.
    const other: number[] = [];
    const b = new TurnQueue<number>((m) => other.push(m), undefined, new TurnGroup());
    b.push(7);
    expect(other).toEqual([7]);
    await nextTurn();
    expect(handled).toHaveLength(ALONE_BUDGET * 2 + TURN_BUDGET);
    await nextTurn();
    expect(handled).toHaveLength(ALONE_BUDGET * 2 + TURN_BUDGET * 2);
  });

  it('shares the budget between the two directions of one session: its own messages never count as contention', async () => {
    await sleep(CONTENDED_MS + 20);
    const group = new TurnGroup();
    const up: number[] = [];
    const down: number[] = [];
    const qUp = new TurnQueue<number>((m) => up.push(m), undefined, group);
    const qDown = new TurnQueue<number>((m) => down.push(m), undefined, group);
    for (let i = 0; i < ALONE_BUDGET + 1; i++) qUp.push(i);
    for (let i = 0; i < ALONE_BUDGET + 1; i++) qDown.push(i);
    expect([up.length, down.length]).toEqual([ALONE_BUDGET, ALONE_BUDGET]);
    await nextTurn();
    expect([up.length, down.length]).toEqual([ALONE_BUDGET + 1, ALONE_BUDGET + 1]);
  });
});
