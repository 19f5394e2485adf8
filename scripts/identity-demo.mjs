#!/usr/bin/env node
// The identity flow a new user walks through first: create a CA, issue an identity, inspect it.
// Runs in a temporary directory and cleans up. (`switchboard demo` replaces this once the tunnel
// exists.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '@switchboard/cli';

const dir = mkdtempSync(join(tmpdir(), 'switchboard-identity-'));
const step = async (title, args) => {
  process.stdout.write(`\n$ switchboard ${args.join(' ')}\n`);
  const code = await main(['node', 'switchboard', ...args]);
  if (code !== 0) throw new Error(`${title} failed with exit code ${code}`);
};
try {
  process.stdout.write(`Switchboard identity flow (in ${dir})\n`);
  await step('ca init', ['ca', 'init', '--trust-domain', 'example.org', '--dir', join(dir, 'pki')]);
  await step('identity issue', [
    'identity', 'issue', 'spiffe://example.org/agent/support',
    '--ca-dir', join(dir, 'pki'), '--out', join(dir, 'ids', 'support'), '--ttl', '1h',
  ]);
  await step('identity inspect', ['identity', 'inspect', join(dir, 'ids', 'support', 'svid.pem')]);
  process.stdout.write('\nDone: a CA, a one-hour X509-SVID for spiffe://example.org/agent/support, and its inspection.\n');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
