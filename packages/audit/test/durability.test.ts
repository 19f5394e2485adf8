import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditTrail, isAuditError, verifyAuditTrail, type AuditUnavailableError } from '../src/index.js';
import { FsProbe, request, tempDir } from './helpers.js';

describe('strict durability with group commit', () => {
  it('resolves every append only after its line is fsynced, with far fewer fsyncs than records', async () => {
    const fs = new FsProbe();
    const path = join(await tempDir(), 'audit.log');
    const t = await AuditTrail.open({ path, fs });
    const agents = 32;
    const perAgent = 20;
    const notDurableAtResolve: number[] = [];
    // 32 concurrent appenders, each waiting for its record to be durable before the next (as a relay does).
    await Promise.all(
      Array.from({ length: agents }, async (_, a) => {
        for (let i = 0; i < perAgent; i++) {
          const { seq } = await t.append(request(a * perAgent + i));
          if (!fs.synced.has(seq)) notDurableAtResolve.push(seq);
        }
      }),
    );
    const total = agents * perAgent;
    expect(notDurableAtResolve).toEqual([]);
    const lines = (await readFile(path, 'utf8')).trim().split('\n');
    expect(lines.length).toBe(total);
    expect(fs.synced.size).toBe(total);
    // Group commit: each fsync carries the records that queued up while the previous one ran.
    expect(fs.syncs).toBeLessThanOrEqual(total / 8);
    expect(t.stats()).toMatchObject({ records: total, syncs: fs.syncs });
    await t.close();
    expect(await verifyAuditTrail([path])).toMatchObject({ ok: true, records: total });
  });

  it('appends made in one tick are written with one write and one fsync', async () => {
    const fs = new FsProbe();
    const t = await AuditTrail.open({ path: join(await tempDir(), 'audit.log'), fs });
    await Promise.all(Array.from({ length: 100 }, (_, i) => t.append(request(i))));
    expect(fs.syncs).toBe(1);
    expect(fs.writes).toBe(1);
    await t.close();
  });
});

describe('failure: the trail fails closed', () => {
  it.each(['sync', 'write'] as const)('a failing %s rejects the batch in flight and every later append; nothing is reported durable', async (op) => {
    const fs = new FsProbe();
    const path = join(await tempDir(), 'audit.log');
    const failures: AuditUnavailableError[] = [];
    const t = await AuditTrail.open({ path, fs, onFailure: (e) => failures.push(e) });
    expect((await t.append(request(0))).seq).toBe(1);
    fs.failOn = { op, n: 2 };
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => t.append(request(i + 1))));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    for (const r of results) expect(isAuditError((r as PromiseRejectedResult).reason, 'AUDIT_ERR_UNAVAILABLE')).toBe(true);
    await expect(t.append(request(99))).rejects.toMatchObject({ code: 'AUDIT_ERR_UNAVAILABLE', reason: 'failed' });
    await expect(t.flush()).rejects.toMatchObject({ code: 'AUDIT_ERR_UNAVAILABLE' });
    expect(t.health()).toMatchObject({ ok: false, state: 'failed', durableSeq: 1, error: expect.stringMatching(/EIO/) });
    expect(failures).toHaveLength(1);
    expect(failures[0]?.cause).toMatchObject({ code: 'EIO' });
    await expect(t.close()).rejects.toMatchObject({ code: 'AUDIT_ERR_UNAVAILABLE' });
  });

  it('waiting appends (buffer full) are rejected too when the trail fails', async () => {
    const fs = new FsProbe();
    const t = await AuditTrail.open({ path: join(await tempDir(), 'audit.log'), fs, maxPendingBytes: 1000 });
    fs.failOn = { op: 'sync', n: 1 };
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => t.append(request(i))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(0);
    expect(t.health().waiting).toBe(0);
    await t.close().catch(() => undefined);
  });

  it('a real write error (ENOSPC on /dev/full) fails the trail', async () => {
    const t = await AuditTrail.open({ path: '/dev/full' });
    await expect(t.append(request(1))).rejects.toMatchObject({ code: 'AUDIT_ERR_UNAVAILABLE', message: expect.stringMatching(/ENOSPC/) });
    expect(t.health().ok).toBe(false);
    await t.close().catch(() => undefined);
  });

  it('batched: an append made after the failure rejects, and health says so', async () => {
    const fs = new FsProbe();
    fs.failOn = { op: 'datasync', n: 1 };
    const t = await AuditTrail.open({ path: join(await tempDir(), 'audit.log'), fs, durability: 'batched', flushIntervalMs: 1 });
    await t.append(request(1)); // batched: accepted before the flush
    await expect(t.flush()).rejects.toMatchObject({ code: 'AUDIT_ERR_UNAVAILABLE' });
    await expect(t.append(request(2))).rejects.toMatchObject({ code: 'AUDIT_ERR_UNAVAILABLE' });
    expect(t.health().state).toBe('failed');
    await t.close().catch(() => undefined);
  });
});

describe('writeSoon', () => {
  it('batched: writes and fdatasyncs what is queued in the next turn instead of after flushIntervalMs', async () => {
    const fs = new FsProbe();
    const t = await AuditTrail.open({ path: join(await tempDir(), 'audit.log'), fs, durability: 'batched', flushIntervalMs: 60_000 });
    await t.append(request(0));
    await t.append(request(1));
    await new Promise((r) => setImmediate(r));
    expect(fs.writes).toBe(0); // held for the (long) interval
    t.writeSoon();
    t.writeSoon(); // idempotent: still one batch
    for (let i = 0; i < 50 && fs.datasyncs === 0; i++) await new Promise((r) => setTimeout(r, 2));
    expect({ writes: fs.writes, datasyncs: fs.datasyncs }).toEqual({ writes: 1, datasyncs: 1 });
    expect(t.health()).toMatchObject({ lastSeq: 2, durableSeq: 2, pendingBytes: 0 });
    await t.close();
  });

  it('does nothing when nothing is queued', async () => {
    const fs = new FsProbe();
    const t = await AuditTrail.open({ path: join(await tempDir(), 'audit.log'), fs, durability: 'batched' });
    t.writeSoon();
    await new Promise((r) => setTimeout(r, 10));
    expect(fs.writes).toBe(0);
    await t.close();
  });
});
