import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { auditCommand, runAuditKeygen, runAuditTail, runAuditVerify, type CliIo } from '../src/cli/index.js';
import { AuditSigningKey, AuditTrail, generateAuditKey, writeAuditKeyFiles } from '../src/index.js';
import { request, tempDir } from './helpers.js';

function io(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: {},
    out: () => out,
    err: () => err,
  };
}

async function trail(records = 12): Promise<{ dir: string; path: string; pub: string }> {
  const dir = await tempDir();
  const pem = generateAuditKey();
  await writeAuditKeyFiles(dir, pem);
  const path = join(dir, 'audit.log');
  const t = await AuditTrail.open({ path, signingKey: AuditSigningKey.fromPem(pem.privateKeyPem), durability: 'off', checkpointEvery: { records: 5 } });
  for (let i = 0; i < records; i++) await t.append(request(i));
  await t.close();
  return { dir, path, pub: join(dir, 'audit_pub.pem') };
}

describe('switchboard audit verify', () => {
  it('prints OK with counts and exits 0 on an intact trail (finding the side file itself)', async () => {
    const { path, pub } = await trail();
    const o = io();
    expect(await runAuditVerify({ files: [path], key: pub }, o)).toBe(0);
    expect(o.out()).toMatch(/using checkpoint file .*audit\.log\.checkpoints/);
    expect(o.out()).toMatch(/^OK: 15 records, seq 1–15, 3 checkpoints \(signatures verified\)/m);
    expect(o.err()).toBe('');
  });

  it('exits 3 on records no signed checkpoint covers, says how many; --allow-unsigned accepts them', async () => {
    // An unsigned trail: no key, so no checkpoint covers any record.
    const dir = await tempDir();
    const path = join(dir, 'audit.log');
    const t = await AuditTrail.open({ path, durability: 'off' });
    for (let i = 0; i < 4; i++) await t.append(request(i));
    await t.close();
    const o = io();
    expect(await runAuditVerify({ files: [path] }, o)).toBe(3);
    expect(o.out()).toBe(
      'UNSIGNED: 4 records, seq 1–4, 0 checkpoints (signatures not checked: no public key); 4 records after the last checkpoint not yet signed; no checkpoint side file: a truncated tail cannot be detected\n' +
        `  last hash ${JSON.parse((await readFile(path, 'utf8')).trim().split('\n')[3] as string).hash}\n` +
        '  4 records (seq 1–4) no signed checkpoint covers: a cut-off or rewritten tail there would not be detected; --allow-unsigned accepts them\n',
    );
    expect(await runAuditVerify({ files: [path], allowUnsigned: true }, io())).toBe(0);
    const j = io();
    expect(await runAuditVerify({ files: [path], json: true }, j)).toBe(3);
    expect(JSON.parse(j.out())).toMatchObject({ ok: true, unsignedTail: 4, unsignedAccepted: false });
    // A signed trail whose writer did not close it: the tail after the last checkpoint (12 records, one every 5).
    const signed = await trail(12);
    const lines = (await readFile(signed.path, 'utf8')).split('\n').filter((l) => l !== '');
    await writeFile(signed.path, `${lines.slice(0, -1).join('\n')}\n`);
    const tail = io();
    expect(await runAuditVerify({ files: [signed.path], key: signed.pub }, tail)).toBe(3);
    expect(tail.out()).toMatch(/^ {2}2 records \(seq 13–14\) no signed checkpoint covers/m);
    expect(await runAuditVerify({ files: [signed.path], key: signed.pub, allowUnsigned: true }, io())).toBe(0);
  });

  it('exits 1 and names the first bad seq and the problem on tampering', async () => {
    const { path, pub } = await trail();
    const lines = (await readFile(path, 'utf8')).split('\n');
    lines.splice(3, 1); // delete seq 4
    await writeFile(path, lines.join('\n'));
    const o = io();
    expect(await runAuditVerify({ files: [path], key: pub }, o)).toBe(1);
    expect(o.out()).toMatch(/FAILED: first bad seq 4: deleted \(.*audit\.log line 4\)/);
    const j = io();
    expect(await runAuditVerify({ files: [path], key: pub, json: true }, j)).toBe(1);
    expect(JSON.parse(j.out())).toMatchObject({ ok: false, firstBadSeq: 4, problem: 'deleted' });
  });

  it('takes a shell glob: orders rotated files, uses the side file, skips torn fragments', async () => {
    const { dir, path, pub } = await trail();
    const lines = (await readFile(path, 'utf8')).split('\n');
    await writeFile(join(dir, 'audit.log.1-6'), `${lines.slice(0, 6).join('\n')}\n`);
    await writeFile(path, lines.slice(6).join('\n'));
    await writeFile(join(dir, 'audit.log.torn-6-1700000000000'), '{"x');
    const o = io();
    const files = ['audit.log', 'audit.log.1-6', 'audit.log.checkpoints', 'audit.log.torn-6-1700000000000'].map((f) => join(dir, f));
    expect(await runAuditVerify({ files, key: pub }, o)).toBe(0);
    expect(o.out()).toMatch(/OK: 15 records/);
    expect(o.err()).toMatch(/skipping .*torn/);
  });

  it('exits 1 on a wrong key, and warns when it cannot check signatures or truncation', async () => {
    const { path } = await trail();
    const other = await tempDir();
    await writeAuditKeyFiles(other, generateAuditKey());
    const o = io();
    expect(await runAuditVerify({ files: [path], key: join(other, 'audit_pub.pem') }, o)).toBe(1);
    expect(o.out()).toMatch(/bad-signature/);
    await rename(`${path}.checkpoints`, `${path}.cp-moved`);
    const w = io();
    expect(await runAuditVerify({ files: [path] }, w)).toBe(0);
    expect(w.err()).toMatch(/no --key/);
    expect(w.err()).toMatch(/no checkpoint file/);
  });

  it('exits 2 on usage errors: a missing file, an unreadable key, no file at all', async () => {
    const { path } = await trail(1);
    const a = io();
    expect(await runAuditVerify({ files: ['/nonexistent/audit.log'] }, a)).toBe(2);
    expect(a.err()).toMatch(/^AUDIT_ERR_FILE: /);
    const b = io();
    expect(await runAuditVerify({ files: [path], key: '/nonexistent/audit_pub.pem' }, b)).toBe(2);
    expect(b.err()).toMatch(/^AUDIT_ERR_KEY_INVALID: /);
    const c = io();
    expect(await runAuditVerify({ files: [`${path}.checkpoints`] }, c)).toBe(2);
    // Through commander: a missing argument is a usage error too.
    const d = io();
    let code = -1;
    const cmd = auditCommand(d, (x) => (code = x));
    cmd.exitOverride().configureOutput({ writeErr: (s) => d.stderr.write(s), writeOut: (s) => d.stdout.write(s) });
    for (const sub of cmd.commands) sub.exitOverride().configureOutput({ writeErr: (s) => d.stderr.write(s) });
    await expect(cmd.parseAsync(['verify'], { from: 'user' })).rejects.toMatchObject({ code: 'commander.missingArgument' });
    await cmd.parseAsync(['verify', path], { from: 'user' });
    expect(code).toBe(0);
  });
});

describe('switchboard audit tail', () => {
  it('prints the last N records, filtered by agent, server, tool and decision', async () => {
    const { path } = await trail(30);
    const all = io();
    expect(await runAuditTail({ file: path, lines: 3 }, all)).toBe(0);
    expect(all.out().trim().split('\n').map((l) => l.split(' ')[0])).toEqual(['#34', '#35', '#36']);

    const deny = io();
    expect(await runAuditTail({ file: path, lines: 100, decision: 'deny' }, deny)).toBe(0);
    const denied = deny.out().trim().split('\n');
    expect(denied).toHaveLength(6); // requests 0, 5, 10, 15, 20, 25
    for (const l of denied) expect(l).toMatch(/ request DENY spiffe:\/\/example\.org\/agent\/a\d → (crm|tickets) tools\/call delete_all rule=\(default deny\)/);

    const narrow = io();
    expect(await runAuditTail({ file: path, lines: 100, agent: 'spiffe://example.org/agent/a0', server: 'crm', tool: 'lookup_customer', json: true }, narrow)).toBe(0);
    const recs = narrow.out().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs.length).toBeGreaterThan(0);
    for (const r of recs) expect(r).toMatchObject({ agent: 'spiffe://example.org/agent/a0', server: 'crm', name: 'lookup_customer' });
    // i ≡ 0 (mod 3), i even, i not a multiple of 5, among 0..29: 6, 12, 18, 24
    expect(recs.map((r) => r['requestId'])).toEqual(['6', '12', '18', '24']);
  });

  it('escapes terminal control and bidi characters from record values', async () => {
    const dir = await tempDir();
    const path = join(dir, 'audit.log');
    const t = await AuditTrail.open({ path, durability: 'off' });
    await t.append(request(1, { name: 'evil\u001b[2J\u202etool' }));
    await t.close();
    const o = io();
    await runAuditTail({ file: path }, o);
    expect(o.out()).toContain('evil\\u001b[2J\\u202etool');
    expect(o.out()).not.toContain('\u001b');
  });

  it('follows appended records across a rotation until aborted', async () => {
    const dir = await tempDir();
    const path = join(dir, 'audit.log');
    const t = await AuditTrail.open({ path, durability: 'off', rotate: { maxBytes: 1500 } });
    await t.append(request(1));
    await t.flush();
    const o = io();
    const ac = new AbortController();
    const done = runAuditTail({ file: path, follow: true, pollMs: 10, signal: ac.signal, type: 'request' }, o);
    for (let i = 2; i <= 12; i++) {
      await t.append(request(i));
      await t.flush();
      await new Promise((r) => setTimeout(r, 15));
    }
    await t.close();
    await new Promise((r) => setTimeout(r, 60));
    ac.abort();
    expect(await done).toBe(0);
    expect(t.stats().rotations).toBeGreaterThan(0);
    const seqs = o.out().trim().split('\n').map((l) => Number(l.split(' ')[0]?.slice(1)));
    expect(seqs).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it('exits 2 on a bad -n or --decision, and on a missing file', async () => {
    const { path } = await trail(1);
    expect(await runAuditTail({ file: path, lines: 'x' }, io())).toBe(2);
    expect(await runAuditTail({ file: path, decision: 'maybe' }, io())).toBe(2);
    expect(await runAuditTail({ file: `${path}.nope` }, io())).toBe(2);
  });
});

describe('switchboard audit keygen', () => {
  it('writes the key pair and refuses to overwrite it', async () => {
    const dir = await tempDir();
    const o = io();
    expect(await runAuditKeygen({ dir }, o)).toBe(0);
    expect(o.out()).toMatch(/Created audit checkpoint key [0-9a-f]{16}/);
    const again = io();
    expect(await runAuditKeygen({ dir }, again)).toBe(2);
    expect(again.err()).toMatch(/^AUDIT_ERR_FILE_EXISTS/);
    expect(await runAuditKeygen({ dir, force: true }, io())).toBe(0);
  });
});
