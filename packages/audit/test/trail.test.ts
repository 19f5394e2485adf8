import { appendFile, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AuditSigningKey,
  AuditTrail,
  checkLine,
  generateAuditKey,
  GENESIS_HASH,
  listTrailFiles,
  verifyAuditTrail,
  type AuditRecord,
} from '../src/index.js';
import { deferred, FsProbe, request, tempDir } from './helpers.js';

const keyPem = generateAuditKey();
const key = AuditSigningKey.fromPem(keyPem.privateKeyPem);

async function records(file: string): Promise<AuditRecord[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const c = checkLine(l);
      if (!c.ok) throw new Error(`bad line: ${c.reason}`);
      return c.record;
    });
}

function clock(start = Date.parse('2025-06-01T00:00:00Z')): { now: () => Date; advance(ms: number): void } {
  let t = start;
  return { now: () => new Date(t), advance: (ms) => (t += ms) };
}

describe('AuditTrail chain', () => {
  it('numbers records from 1, links prev to the previous hash, and starts at the genesis hash', async () => {
    const path = join(await tempDir(), 'audit.log');
    const t = await AuditTrail.open({ path });
    const got = await Promise.all([0, 1, 2].map((i) => t.append(request(i))));
    await t.close();
    const rs = await records(path);
    expect(rs.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(got.map((g) => g.seq)).toEqual([1, 2, 3]);
    expect(rs[0]?.prev).toBe(GENESIS_HASH);
    expect(rs[1]?.prev).toBe(rs[0]?.hash);
    expect(rs[2]?.prev).toBe(got[1]?.hash);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('continues seq and prev across a reopen, after a clean close and after an abandoned (crashed) writer', async () => {
    const path = join(await tempDir(), 'audit.log');
    const a = await AuditTrail.open({ path, signingKey: key });
    for (let i = 0; i < 3; i++) await a.append(request(i));
    await a.close(); // seq 4 is the closing checkpoint
    const fs = new FsProbe();
    const b = await AuditTrail.open({ path, signingKey: key, fs });
    expect((await b.append(request(9))).seq).toBe(5);
    await fs.crash(); // b dies without close (strict: seq 5 is on disk)
    const c = await AuditTrail.open({ path, signingKey: key });
    expect(c.recovery).toBeUndefined();
    expect((await c.append(request(10))).seq).toBe(6);
    await c.close();
    const rs = await records(path);
    expect(rs.map((r) => `${r.seq}:${r.type}`)).toEqual(['1:request', '2:request', '3:request', '4:checkpoint', '5:request', '6:request', '7:checkpoint']);
    const v = await verifyAuditTrail([path], { publicKey: key.publicKey, checkpoints: `${path}.checkpoints` });
    expect(v).toMatchObject({ ok: true, records: 7, checkpoints: 2, sideCheckpoints: 2 });
  });

  it('rejects records the caller must not shape, without consuming a seq', async () => {
    const path = join(await tempDir(), 'audit.log');
    const t = await AuditTrail.open({ path });
    await expect(t.append({ ...request(1), seq: 5 } as never)).rejects.toThrow(/`seq` is set by the trail/);
    await expect(t.append({ type: 'checkpoint' } as never)).rejects.toThrow(TypeError);
    await expect(t.append({ type: 'nope' } as never)).rejects.toThrow(/unknown record type/);
    await expect(t.append(request(1, { args: { n: NaN } }))).rejects.toThrow(/non-finite/);
    expect((await t.append(request(2, { args: { q: 'ok' } }))).seq).toBe(1);
    await t.close();
    expect((await records(path))[0]).toMatchObject({ args: { q: 'ok' } });
  });

  it('validates options', async () => {
    const path = join(await tempDir(), 'audit.log');
    await expect(AuditTrail.open({ path, durability: 'sometimes' as never })).rejects.toThrow(TypeError);
    await expect(AuditTrail.open({ path, checkpointEvery: { records: 0 } })).rejects.toThrow(/checkpointEvery.records/);
    await expect(AuditTrail.open({ path, rotate: { maxBytes: 1.5 } })).rejects.toThrow(/rotate.maxBytes/);
    await expect(AuditTrail.open({ path: join(path, 'no', 'such', 'dir') })).rejects.toMatchObject({ code: 'AUDIT_ERR_FILE' });
  });

  it('rejects appends after close with AUDIT_ERR_UNAVAILABLE', async () => {
    const t = await AuditTrail.open({ path: join(await tempDir(), 'audit.log') });
    await t.close();
    await expect(t.append(request(1))).rejects.toMatchObject({ code: 'AUDIT_ERR_UNAVAILABLE', reason: 'closed' });
    expect(t.health()).toMatchObject({ ok: false, state: 'closed' });
  });
});

describe('AuditTrail checkpoints', () => {
  it('writes a checkpoint every N records, into the chain and the side file, and one at close', async () => {
    const path = join(await tempDir(), 'audit.log');
    const t = await AuditTrail.open({ path, signingKey: key, checkpointEvery: { records: 4 } });
    for (let i = 0; i < 10; i++) await t.append(request(i));
    await t.close();
    const rs = await records(path);
    const cps = rs.filter((r) => r.type === 'checkpoint');
    expect(cps.map((r) => r.seq)).toEqual([5, 10, 13]);
    for (const cp of cps) {
      if (cp.type !== 'checkpoint') throw new Error('type');
      expect(cp.coversSeq).toBe(cp.seq - 1);
      expect(cp.coversHash).toBe(cp.prev);
      expect(key.publicKey.verify(cp.coversSeq, cp.coversHash, cp.sig)).toBe(true);
    }
    const side = (await readFile(`${path}.checkpoints`, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { seq: number; hash: string; keyId: string });
    expect(side.map((s) => s.seq)).toEqual([4, 9, 12]);
    expect(side[2]).toMatchObject({ hash: rs[11]?.hash, keyId: key.keyId });
    expect(t.stats().checkpoints).toBe(3);
  });

  it('writes a checkpoint once T seconds passed, before the next record', async () => {
    const c = clock();
    const path = join(await tempDir(), 'audit.log');
    const t = await AuditTrail.open({ path, signingKey: key, checkpointEvery: { seconds: 60 }, now: c.now });
    await t.append(request(1));
    c.advance(30_000);
    await t.append(request(2));
    c.advance(31_000);
    await t.append(request(3));
    await t.flush();
    expect((await records(path)).map((r) => r.type)).toEqual(['request', 'request', 'checkpoint', 'request']);
    // The timer covers an idle trail too.
    c.advance(61_000);
    t.tickNow();
    await t.flush();
    expect((await records(path)).at(-1)?.type).toBe('checkpoint');
    await t.close(); // nothing new to sign: no extra checkpoint
    expect((await records(path)).length).toBe(5);
  });

  it('writes no checkpoints without a key', async () => {
    const path = join(await tempDir(), 'audit.log');
    const t = await AuditTrail.open({ path, checkpointEvery: { records: 1 } });
    await t.append(request(1));
    await t.append(request(2));
    await t.close();
    expect((await records(path)).map((r) => r.type)).toEqual(['request', 'request']);
    await expect(stat(`${path}.checkpoints`)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('AuditTrail rotation', () => {
  it('rotates by size into <path>.<first>-<last>, each file ending with a checkpoint, the chain continuing', async () => {
    const dir = await tempDir();
    const path = join(dir, 'audit.log');
    const t = await AuditTrail.open({ path, signingKey: key, rotate: { maxBytes: 2000 }, checkpointEvery: { records: 1000 } });
    for (let i = 0; i < 40; i++) await t.append(request(i));
    await t.close();
    const files = await listTrailFiles(path);
    expect(files.length).toBeGreaterThan(3);
    let expected = 1;
    let prev = GENESIS_HASH;
    for (const f of files) {
      const rs = await records(f);
      const m = /\.(\d+)-(\d+)$/.exec(basename(f));
      if (m) {
        expect(Number(m[1])).toBe(rs[0]?.seq);
        expect(Number(m[2])).toBe(rs.at(-1)?.seq);
        expect(rs.at(-1)?.type).toBe('checkpoint');
        expect((await stat(f)).size).toBeLessThan(2000 + 1200);
      }
      for (const r of rs) {
        expect(r.seq).toBe(expected++);
        expect(r.prev).toBe(prev);
        prev = r.hash;
      }
    }
    expect(t.stats().rotations).toBe(files.length - 1);
    // verify orders the files itself.
    const v = await verifyAuditTrail([...files].reverse(), { publicKey: key.publicKey, checkpoints: `${path}.checkpoints` });
    expect(v).toMatchObject({ ok: true, firstSeq: 1, lastSeq: expected - 1 });
  });

  it('rotates by age, and a reopen with an empty live file continues from the newest rotated file', async () => {
    const c = clock();
    const dir = await tempDir();
    const path = join(dir, 'audit.log');
    const t = await AuditTrail.open({ path, rotate: { maxAgeSeconds: 3600 }, now: c.now });
    await t.append(request(1));
    await t.append(request(2));
    c.advance(3_600_000);
    await t.append(request(3)); // starts the next file
    c.advance(3_600_000);
    t.tickNow(); // the timer rotates an idle file too: the live file is left empty
    await t.close();
    expect((await readdir(dir)).sort()).toEqual(['audit.log', 'audit.log.1-2', 'audit.log.3-3']);
    expect((await stat(path)).size).toBe(0);
    const u = await AuditTrail.open({ path, now: c.now });
    expect((await u.append(request(4))).seq).toBe(4);
    await u.close();
    const v = await verifyAuditTrail(await listTrailFiles(path));
    expect(v).toMatchObject({ ok: true, lastSeq: 4 });
  });
});

describe('AuditTrail reopen after damage', () => {
  it('cuts off a torn final line (a crash mid-write), saves it aside and reports it', async () => {
    const path = join(await tempDir(), 'audit.log');
    const a = await AuditTrail.open({ path });
    for (let i = 0; i < 3; i++) await a.append(request(i));
    await a.close();
    const fragment = '{"agent":"spiffe://example.org/agent/a1","argsDig';
    await appendFile(path, fragment);
    const before = await verifyAuditTrail([path]);
    expect(before).toMatchObject({ ok: true, records: 3, torn: { afterSeq: 3, bytes: fragment.length } });
    const b = await AuditTrail.open({ path });
    expect(b.recovery).toMatchObject({ tornBytes: fragment.length, afterSeq: 3 });
    expect(await readFile(b.recovery?.tornSavedTo as string, 'utf8')).toBe(fragment);
    expect((await b.append(request(4))).seq).toBe(4);
    await b.close();
    expect(await verifyAuditTrail([path])).toMatchObject({ ok: true, records: 4 });
    expect((await verifyAuditTrail([path])).torn).toBeUndefined();
  });

  it('refuses to continue from a corrupt last record (AUDIT_ERR_CORRUPT_TAIL)', async () => {
    const path = join(await tempDir(), 'audit.log');
    const a = await AuditTrail.open({ path });
    for (let i = 0; i < 3; i++) await a.append(request(i));
    await a.close();
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace(/"requestId":"2"/, '"requestId":"7"'));
    await expect(AuditTrail.open({ path })).rejects.toMatchObject({ code: 'AUDIT_ERR_CORRUPT_TAIL', message: expect.stringMatching(/last record/) });
  });

  it('refuses to continue a trail that ends before its last signed checkpoint', async () => {
    const path = join(await tempDir(), 'audit.log');
    const a = await AuditTrail.open({ path, signingKey: key, checkpointEvery: { records: 3 } });
    for (let i = 0; i < 6; i++) await a.append(request(i));
    await a.close();
    const lines = (await readFile(path, 'utf8')).split('\n');
    const cut = `${lines.slice(0, 3).join('\n')}\n${lines[3]?.slice(0, 20)}`;
    await writeFile(path, cut);
    await expect(AuditTrail.open({ path, signingKey: key })).rejects.toMatchObject({
      code: 'AUDIT_ERR_CORRUPT_TAIL',
      message: expect.stringMatching(/ends at seq 3 but .* seq 7/),
    });
    // Nothing is repaired: the evidence stays as found.
    expect(await readFile(path, 'utf8')).toBe(cut);
  });

  it('restores the side-file line of a checkpoint record when a crash came between the two writes', async () => {
    const path = join(await tempDir(), 'audit.log');
    const a = await AuditTrail.open({ path, signingKey: key });
    await a.append(request(1));
    await a.close();
    const side = await readFile(`${path}.checkpoints`, 'utf8');
    await truncate(`${path}.checkpoints`, 0);
    const b = await AuditTrail.open({ path, signingKey: key });
    expect(b.recovery).toMatchObject({ sideRestored: 1 });
    await b.close();
    expect(await readFile(`${path}.checkpoints`, 'utf8')).toBe(side);
  });
});

describe('AuditTrail durability modes', () => {
  it('batched: append resolves before anything is synced; flush makes it durable', async () => {
    const fs = new FsProbe();
    const gate = deferred();
    fs.gate = gate.promise;
    const path = join(await tempDir(), 'audit.log');
    const t = await AuditTrail.open({ path, durability: 'batched', fs, flushIntervalMs: 1 });
    const r = await t.append(request(1));
    expect(r.seq).toBe(1);
    expect(fs.synced.has(1)).toBe(false);
    gate.resolve();
    await t.flush();
    expect(fs.synced.has(1)).toBe(true);
    expect(fs.datasyncs).toBeGreaterThanOrEqual(1);
    expect(fs.syncs).toBe(0);
    await t.close();
  });

  it('batched: the writer flushes on its own within flushIntervalMs, many records per fdatasync', async () => {
    const fs = new FsProbe();
    const t = await AuditTrail.open({ path: join(await tempDir(), 'audit.log'), durability: 'batched', fs, flushIntervalMs: 5 });
    for (let i = 1; i <= 50; i++) await t.append(request(i)); // resolves at once: all 50 queue up
    expect(fs.synced.size).toBe(0);
    await new Promise((r) => setTimeout(r, 60)); // no flush() call
    expect(fs.synced.size).toBe(50);
    expect(fs.datasyncs).toBe(1);
    await t.close();
  });

  it('off: no sync while running; close syncs once', async () => {
    const fs = new FsProbe();
    const path = join(await tempDir(), 'audit.log');
    const t = await AuditTrail.open({ path, durability: 'off', fs });
    for (let i = 0; i < 20; i++) await t.append(request(i));
    await new Promise((r) => setTimeout(r, 20));
    expect(fs.syncs + fs.datasyncs).toBe(0);
    expect((await records(path)).length).toBe(20);
    await t.close();
    expect(fs.syncs).toBe(1);
  });

  it('bounds the pending buffer: appends wait (in order) instead of queueing without limit', async () => {
    const fs = new FsProbe();
    const gate = deferred();
    fs.gate = gate.promise;
    const path = join(await tempDir(), 'audit.log');
    const t = await AuditTrail.open({ path, fs, maxPendingBytes: 2000 });
    const all = Array.from({ length: 30 }, (_, i) => t.append(request(i)));
    await new Promise((r) => setTimeout(r, 20));
    const h = t.health();
    expect(h.waiting).toBeGreaterThan(0);
    expect(h.pendingBytes).toBeLessThan(2000 + 600);
    expect(h.lastSeq).toBe(30 - h.waiting);
    gate.resolve();
    const done = await Promise.all(all);
    expect(done.map((d) => d.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    await t.close();
    expect((await records(path)).map((r) => (r.type === 'request' ? r.requestId : '')).join(',')).toBe(Array.from({ length: 30 }, (_, i) => String(i)).join(','));
  });
});
