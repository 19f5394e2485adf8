import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, EnrollmentTokenVerifier, MemoryUsedTokenStore, SpiffeId, TrustDomain } from '@switchboard/pki';
import { main } from '../src/index.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../../..');

interface Result {
  code: number;
  out: string;
  err: string;
}

async function sb(args: string[], env: Record<string, string | undefined> = {}): Promise<Result> {
  let out = '';
  let err = '';
  const code = await main(['node', 'switchboard', ...args], {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env,
  });
  return { code, out, err };
}

let dir: string;
let caDir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sb-cli-'));
  caDir = join(dir, 'pki');
  const r = await sb(['ca', 'init', '--trust-domain', 'example.org', '--dir', caDir]);
  expect(r).toMatchObject({ code: 0, err: '' });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function files(d: string): Promise<string[]> {
  try {
    return (await readdir(d)).sort();
  } catch {
    return [];
  }
}

describe('switchboard ca init', () => {
  it('writes the CA with private keys at mode 0600', async () => {
    expect(await files(caDir)).toEqual([
      'audit_key.pem',
      'audit_pub.pem',
      'bundle.jwks.json',
      'bundle.pem',
      'ca.json',
      'enrollment_key.pem',
      'intermediate.pem',
      'intermediate_key.pem',
      'jwt_key.pem',
      'root.pem',
      'root_key.pem',
    ]);
    for (const key of ['root_key.pem', 'intermediate_key.pem', 'jwt_key.pem', 'enrollment_key.pem', 'audit_key.pem']) {
      expect((await stat(join(caDir, key))).mode & 0o777).toBe(0o600);
    }
    expect(await readFile(join(caDir, 'bundle.pem'), 'utf8')).toBe(await readFile(join(caDir, 'root.pem'), 'utf8'));
  });

  it('refuses to overwrite an existing CA without --force (exit 2), replaces it with --force', async () => {
    const before = await readFile(join(caDir, 'root.pem'), 'utf8');
    const r = await sb(['ca', 'init', '--trust-domain', 'example.org', '--dir', caDir]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^PKI_ERR_CA_EXISTS: /);
    expect(await readFile(join(caDir, 'root.pem'), 'utf8')).toBe(before);
    const other = join(dir, 'forced');
    expect((await sb(['ca', 'init', '--trust-domain', 'example.org', '--dir', other])).code).toBe(0);
    const first = await readFile(join(other, 'root.pem'), 'utf8');
    expect((await sb(['ca', 'init', '--trust-domain', 'example.org', '--dir', other, '--force'])).code).toBe(0);
    expect(await readFile(join(other, 'root.pem'), 'utf8')).not.toBe(first);
  });

  it.each([
    ['Example.org', 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['example.org:443', 'PKI_ERR_ID_PORT'],
    ['', 'PKI_ERR_ID_TRUST_DOMAIN_EMPTY'],
  ])('rejects trust domain %j with %s and writes nothing', async (td, code) => {
    const d = join(dir, `bad-td-${code}`);
    const r = await sb(['ca', 'init', '--trust-domain', td, '--dir', d]);
    expect(r.code).toBe(2);
    expect(r.err.startsWith(`${code}: `)).toBe(true);
    expect(await files(d)).toEqual([]);
  });
});

describe('switchboard identity issue', () => {
  it('writes svid.pem (leaf then intermediate), svid_key.pem 0600 and bundle.pem', async () => {
    const out = join(dir, 'ids', 'support');
    const r = await sb(['identity', 'issue', 'spiffe://example.org/agent/support', '--ca-dir', caDir, '--out', out, '--ttl', '30m']);
    expect(r.code).toBe(0);
    expect(await files(out)).toEqual(['bundle.pem', 'svid.pem', 'svid_key.pem']);
    expect((await stat(join(out, 'svid_key.pem'))).mode & 0o777).toBe(0o600);
    const pem = await readFile(join(out, 'svid.pem'), 'utf8');
    expect(pem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    const insp = await sb(['identity', 'inspect', join(out, 'svid.pem'), '--json']);
    expect(insp.code).toBe(0);
    const report = JSON.parse(insp.out);
    expect(report.spiffeId).toBe('spiffe://example.org/agent/support');
    expect(report.keyUsage).toEqual(['digitalSignature', '(critical)']);
    expect(report.extendedKeyUsage).toEqual(['serverAuth', 'clientAuth']);
    expect(report.validation).toMatchObject({ valid: true });
    // 30 minutes plus the 30 s backdate.
    expect(Date.parse(report.notAfter) - Date.parse(report.notBefore)).toBe(30 * 60_000 + 30_000);
  });

  it.each([
    ['invalid SPIFFE ID', ['spiffe://example.org/agent/../x'], 2, 'PKI_ERR_ID_DOT_SEGMENT'],
    ['uppercase trust domain', ['spiffe://EXAMPLE.org/agent/x'], 2, 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'],
    ['ID outside the CA trust domain', ['spiffe://other.org/agent/x'], 2, 'PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN'],
    ['root ID', ['spiffe://example.org'], 2, 'PKI_ERR_SVID_ROOT_PATH'],
    ['TTL over 24h', ['spiffe://example.org/agent/x', '--ttl', '25h'], 2, 'PKI_ERR_SVID_TTL_TOO_LONG'],
    ['unparseable TTL', ['spiffe://example.org/agent/x', '--ttl', 'soon'], 2, 'ERR_INVALID_DURATION'],
    ['p12 without a passphrase source', ['spiffe://example.org/agent/x', '--p12'], 2, 'PKI_ERR_P12_PASSWORD_MISSING'],
  ])('%s → exit %i with %s, nothing written', async (_name, args, exit, code) => {
    const out = join(dir, 'ids', `bad-${code}`);
    const r = await sb(['identity', 'issue', ...(args as string[]), '--ca-dir', caDir, '--out', out]);
    expect(r.code).toBe(exit);
    expect(r.err.startsWith(`${code}: `)).toBe(true);
    expect(await files(out)).toEqual([]);
  });

  it('an unreadable CA directory → exit 1 with a clear message, nothing written', async () => {
    const out = join(dir, 'ids', 'no-ca');
    const r = await sb(['identity', 'issue', 'spiffe://example.org/agent/x', '--ca-dir', join(dir, 'missing'), '--out', out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^PKI_ERR_CA_UNREADABLE: ca: cannot read .*ca\.json: ENOENT/);
    expect(await files(out)).toEqual([]);
  });

  it('a CA key that does not match its certificate → exit 1, nothing written', async () => {
    const broken = join(dir, 'broken-ca');
    expect((await sb(['ca', 'init', '--trust-domain', 'example.org', '--dir', broken])).code).toBe(0);
    const other = await CertificateAuthority.create({ trustDomain: 'example.org' });
    const otherDir = join(dir, 'other-ca');
    await other.save(otherDir);
    await copyFile(join(otherDir, 'intermediate_key.pem'), join(broken, 'intermediate_key.pem'));
    const out = join(dir, 'ids', 'mismatch');
    const r = await sb(['identity', 'issue', 'spiffe://example.org/agent/x', '--ca-dir', broken, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^PKI_ERR_CA_KEY_MISMATCH: /);
    expect(await files(out)).toEqual([]);
  });

  it('does not overwrite existing output without --force', async () => {
    const out = join(dir, 'ids', 'twice');
    expect((await sb(['identity', 'issue', 'spiffe://example.org/agent/twice', '--ca-dir', caDir, '--out', out])).code).toBe(0);
    const before = await readFile(join(out, 'svid.pem'), 'utf8');
    const again = await sb(['identity', 'issue', 'spiffe://example.org/agent/twice', '--ca-dir', caDir, '--out', out]);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/^PKI_ERR_FILE_EXISTS: /);
    expect(await readFile(join(out, 'svid.pem'), 'utf8')).toBe(before);
    expect((await sb(['identity', 'issue', 'spiffe://example.org/agent/twice', '--ca-dir', caDir, '--out', out, '--force'])).code).toBe(0);
    expect(await readFile(join(out, 'svid.pem'), 'utf8')).not.toBe(before);
  });

  it('--p12 reads the passphrase from SWITCHBOARD_P12_PASSWORD and openssl opens the file', async () => {
    const out = join(dir, 'ids', 'p12');
    const r = await sb(['identity', 'issue', 'spiffe://example.org/agent/desk', '--ca-dir', caDir, '--out', out, '--p12'], {
      SWITCHBOARD_P12_PASSWORD: 'correct horse',
    });
    expect(r.code).toBe(0);
    expect((await stat(join(out, 'svid.p12'))).mode & 0o777).toBe(0o600);
    const { stdout } = await run('openssl', ['pkcs12', '-in', join(out, 'svid.p12'), '-passin', 'pass:correct horse', '-nokeys', '-clcerts']);
    expect(stdout).toContain('BEGIN CERTIFICATE');
    await expect(run('openssl', ['pkcs12', '-in', join(out, 'svid.p12'), '-passin', 'pass:wrong', '-nokeys'])).rejects.toThrow();
  });
});

describe('switchboard identity inspect', () => {
  it('reports an SVID that does not validate against the bundle beside it (exit 1)', async () => {
    const out = join(dir, 'ids', 'foreign');
    expect((await sb(['identity', 'issue', 'spiffe://example.org/agent/f', '--ca-dir', caDir, '--out', out])).code).toBe(0);
    const other = await CertificateAuthority.create({ trustDomain: 'example.org' });
    await writeFile(join(out, 'bundle.pem'), other.bundle().toPem());
    const r = await sb(['identity', 'inspect', join(out, 'svid.pem'), '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out).validation).toMatchObject({ valid: false, code: 'PKI_ERR_SVID_UNTRUSTED' });
  });

  it('a missing file → exit 2', async () => {
    const r = await sb(['identity', 'inspect', join(dir, 'nope.pem')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^ERR_FILE_UNREADABLE: /);
  });
});

describe('switchboard identity token', () => {
  it('prints a single-use enrollment token bound to the ID', async () => {
    const r = await sb(['identity', 'token', 'spiffe://example.org/connector/crm', '--ca-dir', caDir, '--ttl', '15m']);
    expect(r.code).toBe(0);
    const token = r.out.trim();
    const ca = await CertificateAuthority.load(caDir);
    const verifier = new EnrollmentTokenVerifier({
      trustDomain: TrustDomain.parse('example.org'),
      publicKey: ca.enrollmentSigner().publicKey,
      store: new MemoryUsedTokenStore(),
    });
    const id = await verifier.redeem(token);
    expect(id.toString()).toBe('spiffe://example.org/connector/crm');
    await expect(verifier.redeem(token)).rejects.toMatchObject({ code: 'PKI_ERR_TOKEN_USED' });
    expect(SpiffeId.parse('spiffe://example.org/connector/crm').equals(id)).toBe(true);
  });

  it('refuses an ID outside the trust domain (exit 2)', async () => {
    const r = await sb(['identity', 'token', 'spiffe://other.org/connector/crm', '--ca-dir', caDir]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN: /);
  });
});

describe('the installed binary', () => {
  it('`pnpm exec switchboard` runs from the repository root; usage errors exit 2', async () => {
    const bin = join(ROOT, 'node_modules', '.bin', 'switchboard');
    const { stdout } = await run(bin, ['--help'], { cwd: ROOT });
    expect(stdout).toContain('identity');
    const err = await run(bin, ['identity', 'issue'], { cwd: ROOT }).catch((e: { code: number; stderr: string }) => e);
    expect(err).toMatchObject({ code: 2 });
  });
});

describe('switchboard enroll', () => {
  it('gets a first identity with a token from `identity token` (key made here); a reused token writes nothing', async () => {
    const { startRelay, MemoryAuditSink } = await import('@switchboard/relay');
    const relayIds = join(dir, 'enroll-relay');
    expect((await sb(['identity', 'issue', 'spiffe://example.org/relay/main', '--ca-dir', caDir, '--out', relayIds])).code).toBe(0);
    const relay = await startRelay({
      listen: '127.0.0.1:0',
      identity: relayIds,
      policy: { trustDomain: 'example.org', servers: {} },
      audit: { sink: new MemoryAuditSink() },
      // The relay holds the intermediate (from the CA directory) and the enrollment key's public half.
      renewal: { issuer: caDir, ttlSeconds: 600 },
      enrollment: { listen: '127.0.0.1:0', publicKey: join(caDir, 'enrollment_key.pem'), usedTokens: join(dir, 'enroll-used.jsonl') },
    });
    try {
      const t = await sb(['identity', 'token', 'spiffe://example.org/connector/new', '--ca-dir', caDir]);
      expect(t.code).toBe(0);
      const tokenFile = join(dir, 'enroll-token');
      await writeFile(tokenFile, t.out);
      const out = join(dir, 'enrolled');
      const r = await sb(['enroll', '--relay', relay.enrollUrl as string, '--token', tokenFile, '--bundle', join(caDir, 'bundle.pem'), '--out', out]);
      expect(r).toMatchObject({ code: 0, err: '', out: expect.stringMatching(/^enrolled spiffe:\/\/example\.org\/connector\/new: .*svid\.pem \(expires /) });
      expect((await readdir(out)).sort()).toEqual(['bundle.pem', 'svid.pem', 'svid_key.pem']);
      expect((await stat(join(out, 'svid_key.pem'))).mode & 0o777).toBe(0o600);
      const inspected = await sb(['identity', 'inspect', join(out, 'svid.pem'), '--json']);
      expect(inspected.code).toBe(0);
      expect(JSON.parse(inspected.out)).toMatchObject({ spiffeId: 'spiffe://example.org/connector/new', validation: { valid: true } });
      // The same token again: refused, and nothing is written.
      const again = join(dir, 'enrolled-again');
      const r2 = await sb(['enroll', '--relay', relay.enrollUrl as string, '--token', tokenFile, '--bundle', join(caDir, 'bundle.pem'), '--out', again]);
      expect(r2.code).toBe(1);
      expect(r2.err).toMatch(/^ENROLL_ERR_TOKEN_USED: the relay refused \(HTTP 409 ENROLL_ERR_TOKEN_USED\): enrollment: token has already been redeemed\n$/);
      await expect(readdir(again)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await relay.close();
    }
  });
});

describe('a reader that closes early', () => {
  it('`switchboard audit tail … | head -1` ends quietly with exit 0, no EPIPE trace', async () => {
    const { AuditTrail } = await import('@switchboard/audit');
    const work = await mkdtemp(join(tmpdir(), 'sb-epipe-'));
    try {
      const path = join(work, 'audit.log');
      const trail = await AuditTrail.open({ path, durability: 'off' });
      for (let i = 0; i < 3000; i++) await trail.append({ type: 'policy.reload', accepted: true, file: `p${i}.yaml`, fileHash: 'a'.repeat(64), error: null });
      await trail.close();
      const { spawn } = await import('node:child_process');
      const child = spawn(process.execPath, [join(ROOT, 'packages/cli/bin/switchboard.js'), 'audit', 'tail', path, '-n', '3000'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      // Read one chunk, then close the pipe, as `head -1` does.
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      child.stdout.destroy();
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('flags are the same across the long-running commands', () => {
  it.each(['relay', 'connector'])('`%s --help` offers -c, --config and --log-level', async (command) => {
    const r = await sb([command, '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/-c, --config <path>/);
    expect(r.out).toMatch(/--log-level <level>/);
  });

  it.each([
    [['relay'], 'log level (default: $LOG_LEVEL, else info)'],
    [['connector'], 'log level (default: $LOG_LEVEL, else info)'],
    [['agent', 'http'], 'log level, to stderr (default: $LOG_LEVEL, else info)'],
    [['agent', 'stdio'], 'log level, to stderr (default: $LOG_LEVEL, else warn)'],
  ])('`%s --help` names where --log-level comes from and its default', async (command, help) => {
    const r = await sb([...command, '--help']);
    expect(r.out.replace(/\s+/g, ' ')).toContain(`--log-level <level> ${help} (choices: "debug", "info", "warn", "error", "silent")`);
  });

  it.each([['relay', '-c', 'relay.yaml'], ['connector', '-c', 'connector.yaml'], ['agent', 'stdio', '--relay', 'wss://127.0.0.1:1', '--server', 'x', '--identity', './ids']])(
    'a LOG_LEVEL that is not a level stops `%s` with exit 2 before anything starts',
    async (...args) => {
      // A process of its own: these commands read the real environment and write to the real stderr.
      const r = await run(process.execPath, [join(ROOT, 'packages/cli/bin/switchboard.js'), ...args], { env: { ...process.env, LOG_LEVEL: 'loud' } }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
      );
      expect(r).toEqual({ code: 2, stderr: 'ERR_INVALID_LOG_LEVEL: LOG_LEVEL="loud" is not a log level (debug, info, warn, error, silent)\n' });
    },
  );

  it('`tools approve --help` shows the default timeout', async () => {
    const r = await sb(['tools', 'approve', '--help']);
    // Commander wraps help at 80 columns: compare with the whitespace folded.
    expect(r.out.replace(/\s+/g, ' ')).toContain('--timeout <ms> how long to wait for a running relay, in ms (default: 10000)');
  });
});
