import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AuditTrail, checkLine, generateAuditKey, loadAuditSigningKey, verifyAuditTrail, writeAuditKeyFiles } from '../src/index.js';
import { tempDir } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const writer = join(here, 'fixtures', 'crash-writer.mjs');
const built = join(here, '..', 'dist', 'index.js');

describe('crash: kill -9 while appending in strict mode', () => {
  it('every seq acknowledged as durable is on disk, and the chain verifies up to the crash point', async () => {
    // The child process runs the built package (`pnpm test` builds first).
    if (!existsSync(built)) expect.fail('packages/audit/dist is missing: run `npx tsc -b packages/audit` before the crash test');
    const dir = await tempDir();
    const path = join(dir, 'audit.log');
    await writeAuditKeyFiles(dir, generateAuditKey());
    const child = spawn(process.execPath, [writer, path, join(dir, 'audit_key.pem'), '16'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const acked: number[] = [];
    let buf = '';
    await new Promise<void>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`writer exited early: ${code} ${signal}`))));
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const l of lines) if (/^\d+$/.test(l)) acked.push(Number(l));
        if (acked.length >= 400 && !child.killed) child.kill('SIGKILL'); // mid-stream: appends are in flight
      });
    });
    // A partial stdout line is a seq whose print was cut: only complete lines count as acknowledged.
    expect(acked.length).toBeGreaterThanOrEqual(400);

    const text = await readFile(path, 'utf8');
    const complete = text.slice(0, text.lastIndexOf('\n') + 1);
    const onDisk = new Set(
      complete
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => {
          const c = checkLine(l);
          if (!c.ok) throw new Error(`line not a record: ${c.reason}`);
          return c.record.seq;
        }),
    );
    const missing = acked.filter((s) => !onDisk.has(s));
    expect(missing).toEqual([]);

    const pub = (await loadAuditSigningKey(join(dir, 'audit_key.pem'))).publicKey;
    const v = await verifyAuditTrail([path], { publicKey: pub, checkpoints: `${path}.checkpoints` });
    expect(v.ok).toBe(true);
    expect(v.lastSeq).toBeGreaterThanOrEqual(Math.max(...acked));
    expect(v.checkpoints).toBeGreaterThan(0);
    // The rule: a torn final line may exist only past every acknowledged seq.
    if (v.torn) expect(v.torn.afterSeq).toBeGreaterThanOrEqual(Math.max(...acked));

    // Restart: the trail continues the chain; a torn line, if any, is reported and cut off.
    const t = await AuditTrail.open({ path, signingKey: await loadAuditSigningKey(join(dir, 'audit_key.pem')) });
    expect(t.recovery?.tornBytes ?? 0).toBe(v.torn?.bytes ?? 0);
    const next = await t.append({ type: 'policy.reload', accepted: true, file: 'policy.yaml', fileHash: null, error: null });
    expect(next.seq).toBe((v.lastSeq ?? 0) + 1);
    await t.close();
    expect(await verifyAuditTrail([path], { publicKey: pub, checkpoints: `${path}.checkpoints` })).toMatchObject({ ok: true, lastSeq: next.seq + 1 });
  });
});
