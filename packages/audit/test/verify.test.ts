import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AuditPublicKey,
  AuditSigningKey,
  AuditTrail,
  checkLine,
  encodeRecord,
  generateAuditKey,
  verifyAuditTrail,
  type AuditProblem,
} from '../src/index.js';
import { FsProbe, request, tempDir } from './helpers.js';

const key = AuditSigningKey.fromPem(generateAuditKey().privateKeyPem);
const otherKey = AuditPublicKey.fromPem(generateAuditKey().publicKeyPem);

/**
 * The fixture: 13 requests with a checkpoint every 4 records and no closing checkpoint, i.e.
 * seq 1–4 requests, 5 checkpoint (signs 4), 6–9, 10 checkpoint (signs 9), 11–14, 15 checkpoint
 * (signs 14), 16 a request not yet signed. Side file: seq 4, 9, 14.
 */
async function fixture(): Promise<{ path: string; lines: string[] }> {
  const path = join(await tempDir(), 'audit.log');
  const fs = new FsProbe();
  const t = await AuditTrail.open({ path, signingKey: key, durability: 'off', checkpointEvery: { records: 4 }, fs });
  for (let i = 0; i < 13; i++) await t.append(request(i));
  await t.flush();
  await fs.crash(); // no closing checkpoint
  const lines = (await readFile(path, 'utf8')).split('\n').slice(0, -1);
  expect(lines).toHaveLength(16);
  return { path, lines };
}

const at = (lines: string[], seq: number): string => lines[seq - 1] as string;
const rec = (line: string): Record<string, unknown> => JSON.parse(line) as Record<string, unknown>;
/** reencode rebuilds a line from fields, with a correct hash (what a forger without the key can do). */
const reencode = (fields: Record<string, unknown>): string => encodeRecord(fields).line;

function flipByteInReason(line: string): string {
  const i = line.indexOf('"reason":"') + 'reason":"'.length + 3;
  return line.slice(0, i) + (line[i] === 'x' ? 'y' : 'x') + line.slice(i + 1);
}

type Tamper = (lines: string[]) => string[];

const cases: [string, Tamper, AuditProblem, number][] = [
  ['one byte changed in a value', (l) => l.map((x, i) => (i === 6 ? flipByteInReason(x) : x)), 'edited', 7],
  ['one byte changed in the stored hash', (l) => l.map((x, i) => (i === 6 ? x.replace(/"hash":"(.)/, (_m, c: string) => `"hash":"${c === 'a' ? 'b' : 'a'}`) : x)), 'edited', 7],
  ['one byte changed in seq', (l) => l.map((x, i) => (i === 6 ? x.replace('"seq":7', '"seq":8') : x)), 'edited', 7],
  ['one byte that breaks the JSON', (l) => l.map((x, i) => (i === 6 ? `x${x.slice(1)}` : x)), 'malformed', 7],
  ['an empty line slipped in', (l) => [...l.slice(0, 7), '', ...l.slice(7)], 'malformed', 8],
  ['a record deleted', (l) => l.filter((_x, i) => i !== 6), 'deleted', 7],
  ['two records deleted', (l) => l.filter((_x, i) => i !== 6 && i !== 7), 'deleted', 7],
  ['the first record deleted', (l) => l.slice(1), 'deleted', 1],
  ['two adjacent records swapped', (l) => [...l.slice(0, 6), at(l, 8), at(l, 7), ...l.slice(8)], 'reordered', 7],
  ['two distant records swapped', (l) => [...l.slice(0, 2), at(l, 8), ...l.slice(3, 7), at(l, 3), ...l.slice(8)], 'reordered', 3],
  ['a copy of an earlier record inserted', (l) => [...l.slice(0, 7), at(l, 3), ...l.slice(7)], 'inserted', 8],
  [
    'a forged record inserted with a correct seq, prev and hash',
    (l) => {
      const forged = reencode({ ...request(99), seq: 8, time: rec(at(l, 8))['time'], prev: rec(at(l, 7))['hash'] });
      return [...l.slice(0, 7), forged, ...l.slice(7)];
    },
    'inserted',
    8,
  ],
  [
    'a forged record inserted that does not link',
    (l) => {
      const forged = reencode({ ...request(99), seq: 8, time: rec(at(l, 8))['time'], prev: 'f'.repeat(64) });
      return [...l.slice(0, 7), forged, ...l.slice(7)];
    },
    'inserted',
    8,
  ],
  [
    'a record inserted with a seq from further on',
    (l) => [...l.slice(0, 7), reencode({ ...request(99), seq: 9, time: rec(at(l, 8))['time'], prev: rec(at(l, 7))['hash'] }), ...l.slice(7)],
    'inserted',
    8,
  ],
  [
    'a record edited and re-hashed',
    (l) => {
      const r = rec(at(l, 7));
      return l.map((x, i) => (i === 6 ? reencode({ ...r, decision: 'allow', reason: 'nothing to see' }) : x));
    },
    'edited',
    7,
  ],
  [
    'a record edited and every later record re-chained (caught at the next signed checkpoint)',
    (l) => {
      const out = l.slice(0, 6);
      let prev = rec(at(l, 6))['hash'];
      for (let seq = 7; seq <= 16; seq++) {
        const r = rec(at(l, seq));
        const line = reencode({ ...r, ...(seq === 7 ? { reason: 'nothing to see' } : {}), prev });
        prev = (checkLine(line) as { record: { hash: string } }).record.hash;
        out.push(line);
      }
      return out;
    },
    'edited',
    9,
  ],
  ['truncated after a checkpoint (the last checkpoint and the records it signs removed)', (l) => l.slice(0, 12), 'truncated', 13],
  ['truncated mid-line before the last checkpoint', (l) => [...l.slice(0, 12), at(l, 13).slice(0, 40)], 'truncated', 13],
  [
    'a checkpoint signature altered (and the record re-hashed)',
    (l) => {
      const r = rec(at(l, 10));
      const sig = String(r['sig']);
      return l.map((x, i) => (i === 9 ? reencode({ ...r, sig: `${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}` }) : x));
    },
    'bad-signature',
    10,
  ],
];

describe('verifyAuditTrail', () => {
  it('passes an intact trail and counts what it checked', async () => {
    const { path } = await fixture();
    const r = await verifyAuditTrail([path], { publicKey: key.publicKey, checkpoints: `${path}.checkpoints` });
    expect(r).toMatchObject({ ok: true, records: 16, firstSeq: 1, lastSeq: 16, checkpoints: 3, sideCheckpoints: 3, signaturesChecked: true, unsignedTail: 1 });
    expect(r.firstBadSeq).toBeUndefined();
    expect(r.message).toMatch(/16 records, seq 1–16, 3 checkpoints \(signatures verified\); 1 record after the last checkpoint not yet signed/);
  });

  it.each(cases.map(([name, tamper, problem, seq]) => ({ name, tamper, problem, seq })))('detects $name → $problem at seq $seq', async ({ tamper, problem, seq }) => {
    const { path, lines } = await fixture();
    const tampered = tamper(lines);
    const last = tampered.at(-1) as string;
    // Keep the fixture's trailing newline, except for the "mid-line" cut, which has none.
    const complete = checkLine(last).ok || last === '';
    await writeFile(path, tampered.join('\n') + (complete ? '\n' : ''));
    const r = await verifyAuditTrail([path], { publicKey: key.publicKey, checkpoints: `${path}.checkpoints` });
    expect({ ok: r.ok, problem: r.problem, firstBadSeq: r.firstBadSeq }).toEqual({ ok: false, problem, firstBadSeq: seq });
    expect(r.message).not.toBe('');
  });

  it('reports a wrong verification key as bad-signature at the first checkpoint', async () => {
    const { path } = await fixture();
    expect(await verifyAuditTrail([path], { publicKey: otherKey })).toMatchObject({ ok: false, problem: 'bad-signature', firstBadSeq: 5, message: expect.stringMatching(/signed by key/) });
    expect(await verifyAuditTrail([path], { publicKey: otherKey, checkpoints: `${path}.checkpoints` })).toMatchObject({ ok: false, problem: 'bad-signature', firstBadSeq: 5 });
  });

  it('reports a forged side-file checkpoint as bad-signature', async () => {
    const { path } = await fixture();
    const side = (await readFile(`${path}.checkpoints`, 'utf8')).split('\n');
    side[1] = JSON.stringify({ ...JSON.parse(side[1] as string), hash: 'e'.repeat(64) });
    await writeFile(`${path}.checkpoints`, side.join('\n'));
    expect(await verifyAuditTrail([path], { publicKey: key.publicKey, checkpoints: `${path}.checkpoints` })).toMatchObject({ ok: false, problem: 'bad-signature', firstBadSeq: 10 });
    // Without the key the side file still disagrees with the chain.
    expect(await verifyAuditTrail([path], { checkpoints: `${path}.checkpoints` })).toMatchObject({ ok: false, problem: 'edited', firstBadSeq: 9 });
  });

  it('without the side file a truncated tail goes unnoticed (and the result says so)', async () => {
    const { path, lines } = await fixture();
    await writeFile(path, `${lines.slice(0, 12).join('\n')}\n`);
    const r = await verifyAuditTrail([path], { publicKey: key.publicKey });
    expect(r.ok).toBe(true);
    expect(r.message).toMatch(/no checkpoint side file: a truncated tail cannot be detected/);
  });

  it('accepts a trail that starts after seq 1 only with partial', async () => {
    const { path, lines } = await fixture();
    await writeFile(path, `${lines.slice(5).join('\n')}\n`);
    expect(await verifyAuditTrail([path], { publicKey: key.publicKey })).toMatchObject({ ok: false, problem: 'deleted', firstBadSeq: 1, message: expect.stringMatching(/starts at seq 6/) });
    expect(await verifyAuditTrail([path], { publicKey: key.publicKey, checkpoints: `${path}.checkpoints`, partial: true })).toMatchObject({ ok: true, firstSeq: 6, lastSeq: 16, records: 11 });
  });

  it('treats an unterminated final line after the last signed checkpoint as a torn write, not tampering', async () => {
    const { path, lines } = await fixture();
    await writeFile(path, `${lines.join('\n')}\n${lines[15]?.slice(0, 30)}`);
    const r = await verifyAuditTrail([path], { publicKey: key.publicKey, checkpoints: `${path}.checkpoints` });
    expect(r).toMatchObject({ ok: true, records: 16, torn: { afterSeq: 16, bytes: 30 } });
    expect(r.message).toMatch(/torn final line \(30 bytes\) after seq 16/);
  });

  it('an unterminated line in a file that is not the last one is malformed', async () => {
    const { path, lines } = await fixture();
    await writeFile(`${path}.1-8`, `${lines.slice(0, 7).join('\n')}\n${lines[7]}`);
    await writeFile(path, `${lines.slice(8).join('\n')}\n`);
    expect(await verifyAuditTrail([path, `${path}.1-8`])).toMatchObject({ ok: false, problem: 'malformed', firstBadSeq: 8 });
  });

  it('rejects unreadable files with AUDIT_ERR_FILE and an empty list with TypeError', async () => {
    await expect(verifyAuditTrail(['/nonexistent/audit.log'])).rejects.toMatchObject({ code: 'AUDIT_ERR_FILE' });
    await expect(verifyAuditTrail([])).rejects.toThrow(TypeError);
  });
});
