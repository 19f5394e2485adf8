// Every error code the code can emit is listed in docs/errors.md, and every code listed there
// exists in the code: a code is a quoted `…ERR_…` string in a package's sources; the docs list
// codes in backticks. Codes of Node.js and ws that the code only reads (to classify a failure)
// are not ours to document.
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const CODE = /['"`]((?:[A-Z]+_)?ERR_[A-Z0-9_]*[A-Z0-9])['"`]/g;
/** FOREIGN are Node.js and ws codes the code compares against, and prefixes it matches with. */
const FOREIGN = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'WS_ERR_INVALID_UTF8',
  'WS_ERR_TOO_MANY_BUFFERED_PARTS',
  'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH',
  'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
]);

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

async function emitted(): Promise<Set<string>> {
  const codes = new Set<string>();
  for (const pkg of await readdir(join(ROOT, 'packages'))) {
    for (const file of await sources(join(ROOT, 'packages', pkg, 'src')).catch(() => [])) {
      for (const m of (await readFile(file, 'utf8')).matchAll(CODE)) if (!FOREIGN.has(m[1] as string)) codes.add(m[1] as string);
    }
  }
  return codes;
}

describe('docs/errors.md and the code agree on the error codes', () => {
  it('every code the code emits is listed, and every listed code exists', async () => {
    const code = await emitted();
    const doc = new Set([...(await readFile(join(ROOT, 'docs/errors.md'), 'utf8')).matchAll(/`((?:[A-Z]+_)?ERR_[A-Z0-9_]*[A-Z0-9])`/g)].map((m) => m[1] as string));
    expect([...code].filter((c) => !doc.has(c)).sort(), 'emitted but not in docs/errors.md').toEqual([]);
    expect([...doc].filter((c) => !code.has(c)).sort(), 'in docs/errors.md but emitted nowhere').toEqual([]);
    // The check sees the codes: a few it must find.
    for (const c of ['RELAY_ERR_CONFIG', 'PKI_ERR_SVID_EXPIRED', 'AUDIT_ERR_UNAVAILABLE', 'ERR_INVALID_DURATION']) expect(code.has(c), c).toBe(true);
  });
});
