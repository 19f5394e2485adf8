// TrailAuditSink holds records nothing waits on for at most LAZY_WRITE_MS, then builds, chains and
// writes them in one batch, in order; an append takes the held records along first.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditRecordInput } from '@switchboard/audit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RelayAuditDurability } from '../../src/config/audit-config.js';
import { LAZY_WRITE_MS, TrailAuditSink } from '../../src/audit/trail-sink.js';
import { verifyAuditTrail } from '@switchboard/audit';
import { ControlledAuditFs } from '../helpers/audit-fs.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sb-sink-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const reload = (file: string): AuditRecordInput => ({ type: 'policy.reload', accepted: true, file, fileHash: 'a'.repeat(64), error: null }) as AuditRecordInput;

async function lines(path: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function until(cond: () => Promise<boolean> | boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe.each(['off', 'batched', 'strict'] as RelayAuditDurability[])('TrailAuditSink (%s)', (durability) => {
  it('holds written records, builds lazy ones once, then writes them all in order in one batch', async () => {
    const path = join(dir, 'audit.log');
    const sink = await TrailAuditSink.open({ path, durability });
    let built = 0;
    sink.write(reload('a.yaml'));
    sink.write(() => {
      built++;
      return reload('b.yaml');
    });
    sink.write(reload('c.yaml'));
    expect(built).toBe(0);
    expect(sink.queued).toBe(3);
    expect(sink.stats().records).toBe(0);
    await until(() => sink.health().durableSeq === 3, 5000 + LAZY_WRITE_MS);
    expect(built).toBe(1);
    expect(sink.queued).toBe(0);
    expect((await lines(path)).map((r) => [r['seq'], r['file']])).toEqual([
      [1, 'a.yaml'],
      [2, 'b.yaml'],
      [3, 'c.yaml'],
    ]);
    expect(sink.stats().batches).toBe(1);
    await sink.close();
  });

  it('an append takes the held records along first, keeping the order of the calls', async () => {
    const path = join(dir, 'audit.log');
    const sink = await TrailAuditSink.open({ path, durability });
    sink.write(reload('first.yaml'));
    await sink.append(reload('second.yaml'));
    sink.write(reload('third.yaml'));
    await sink.flush();
    expect((await lines(path)).map((r) => r['file'])).toEqual(['first.yaml', 'second.yaml', 'third.yaml']);
    await sink.close();
  });

  it('a lazy record that fails to build is reported, and the others are still written', async () => {
    const path = join(dir, 'audit.log');
    const refused: string[] = [];
    const sink = await TrailAuditSink.open({ path, durability, onRefused: (err, type) => refused.push(`${type}: ${err.message}`) });
    sink.write(reload('ok-1.yaml'));
    sink.write(() => {
      throw new Error('boom');
    });
    sink.write(reload('ok-2.yaml'));
    await sink.flush();
    expect(refused).toEqual(['write: boom']);
    expect((await lines(path)).map((r) => r['file'])).toEqual(['ok-1.yaml', 'ok-2.yaml']);
    await sink.close();
  });
});

describe('TrailAuditSink on a full disk', () => {
  it('fails closed while writes get ENOSPC, reopens by itself once space returns, and the chain goes on', async () => {
    const fs = new ControlledAuditFs();
    const path = join(dir, 'full.log');
    let recovered = 0;
    const sink = await TrailAuditSink.open({ path, durability: 'strict', fs, recoverEveryMs: 50, onRecovered: () => recovered++, freeBytes: async () => (fs.full ? 4096 : 1 << 30) });
    await sink.append(reload('before'));
    fs.full = true;
    await expect(sink.append(reload('lost'))).rejects.toMatchObject({ code: 'AUDIT_ERR_UNAVAILABLE' });
    expect(sink.available).toBe(false);
    // Still full: every probe fails, the sink stays closed.
    await new Promise((r) => setTimeout(r, 200));
    expect(sink.available).toBe(false);
    fs.full = false;
    await until(() => sink.available, 3000);
    expect(recovered).toBe(1);
    expect(sink.recoveries).toBe(1);
    await sink.append(reload('after'));
    await sink.close();
    const files = (await lines(path)).filter((l) => l.type === 'policy.reload').map((l) => l.file);
    expect(files).toEqual(['before', 'after']);
    expect(await verifyAuditTrail([path])).toMatchObject({ ok: true, firstSeq: 1 });
  });

  it('an fsync error is final: no reopen', async () => {
    const fs = new ControlledAuditFs();
    const sink = await TrailAuditSink.open({ path: join(dir, 'eio.log'), durability: 'strict', fs, recoverEveryMs: 50 });
    fs.fail();
    await expect(sink.append(reload('x'))).rejects.toMatchObject({ code: 'AUDIT_ERR_UNAVAILABLE' });
    await new Promise((r) => setTimeout(r, 300));
    expect(sink.available).toBe(false);
    expect(sink.recoveries).toBe(0);
    await sink.close().catch(() => undefined);
  });
});
