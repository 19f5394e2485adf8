/**
 * The container image's build step, without a container engine: the `pnpm deploy` command the
 * Dockerfile runs is read from the Dockerfile itself, run into a directory outside the workspace,
 * and the CLI it bundles is started from there — so it can only find what the bundle holds.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const DOCKERFILE = join(ROOT, 'deploy', 'Dockerfile');

let work: string;
let out: string;

/** deployArgs finds the `pnpm deploy …` command of the Dockerfile's RUN lines, with its output directory. */
function deployArgs(dockerfile: string): { args: string[]; outDir: string } {
  const commands = dockerfile
    .split('\n')
    .filter((l) => l.startsWith('RUN '))
    .flatMap((l) => l.slice(4).split('&&'))
    .map((c) => c.trim());
  const deploy = commands.find((c) => c.startsWith('pnpm deploy '));
  if (!deploy) throw new Error('deploy/Dockerfile has no `pnpm deploy` step');
  const args = deploy.split(/\s+/).slice(1);
  const outDir = args.at(-1) as string;
  return { args: args.slice(0, -1), outDir };
}

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [join(out, 'bin', 'switchboard.js'), ...args], { cwd: work, timeout: 60_000 });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'sb-image-'));
  const { args, outDir } = deployArgs(await readFile(DOCKERFILE, 'utf8'));
  expect(outDir).toBe('/out');
  out = join(work, 'out');
  // `pnpm test` has built the workspace, as the Dockerfile's `pnpm build` does before this step.
  await run('pnpm', [...args, out], { cwd: ROOT, timeout: 120_000 });
}, 180_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
  // pnpm 10's legacy deploy, given a target under the same parent as the workspace (a clone in
  // /tmp, the target in /tmp), also writes the bundle's node_modules/.bin links to
  // packages/<target's folder>/out in the workspace. Remove that stray copy; the bundle is in `out`.
  if (work) await rm(join(ROOT, 'packages', basename(work)), { recursive: true, force: true });
});

describe('the image bundle (deploy/Dockerfile)', () => {
  it('holds the CLI with its runtime dependencies and no dev tooling', async () => {
    const pkg = JSON.parse(await readFile(join(out, 'package.json'), 'utf8')) as { name: string; bin: Record<string, string> };
    expect(pkg.name).toBe('@switchboard/cli');
    expect(pkg.bin).toEqual({ switchboard: './bin/switchboard.js' });
    for (const dep of ['@switchboard/relay', '@switchboard/connector', '@switchboard/pki', 'commander']) {
      expect(existsSync(join(out, 'node_modules', dep, 'package.json')), dep).toBe(true);
    }
    // Each workspace package is a copy of its published files, not a link back into the workspace.
    expect(realpathSync(join(out, 'node_modules', '@switchboard', 'relay')).startsWith(out)).toBe(true);
    expect(existsSync(join(out, 'node_modules', '@switchboard', 'relay', 'dist', 'index.js'))).toBe(true);
    expect(existsSync(join(out, 'node_modules', '@switchboard', 'relay', 'src'))).toBe(false);
    // The SPIFFE Workload API client loads its .proto at run time: it ships with the pki package.
    expect(existsSync(join(out, 'node_modules', '@switchboard', 'pki', 'proto', 'workload.proto'))).toBe(true);
    const installed = readdirSync(join(out, 'node_modules', '.pnpm'));
    expect(installed.filter((d) => /^(vitest|typescript|@types\+)/.test(d))).toEqual([]);
  });

  it('starts: --help lists the commands', async () => {
    const { stdout } = await cli('--help');
    expect(stdout).toMatch(/^Usage: switchboard /);
    for (const command of ['ca', 'identity', 'relay', 'connector', 'agent', 'demo']) expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  });

  it('makes a CA, issues an identity and inspects it', async () => {
    await cli('ca', 'init', '--trust-domain', 'example.org', '--dir', join(work, 'pki'));
    await cli('identity', 'issue', 'spiffe://example.org/agent/support', '--ca-dir', join(work, 'pki'), '--out', join(work, 'agent'), '--ttl', '15m');
    const { stdout } = await cli('identity', 'inspect', join(work, 'agent', 'svid.pem'), '--json');
    const inspected = JSON.parse(stdout) as Record<string, unknown>;
    expect(inspected).toMatchObject({
      spiffeId: 'spiffe://example.org/agent/support',
      uris: ['spiffe://example.org/agent/support'],
      chainLength: 2,
      validation: { bundle: join(work, 'agent', 'bundle.pem'), valid: true },
      svidRules: { ok: true },
    });
  });
});
