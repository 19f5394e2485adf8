// The README's "Running it for real", run as written: its commands in order, its three files, the
// real MCP Inspector (the version the README names) with `switchboard agent stdio` after `--`.
// The one change: port 8443 becomes a free loopback port, so the test binds nothing fixed.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, freeLoopbackPort } from './world.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const BIN = join(ROOT, 'node_modules/.bin');
const INSPECTOR_VERSION = (JSON.parse(readFileSync(join(ROOT, 'node_modules/@modelcontextprotocol/inspector/package.json'), 'utf8')) as { version: string }).version;

interface Block {
  lang: string;
  lines: string[];
}

/** section is the README text under `heading`, up to the next heading of any level. */
function section(text: string, heading: string): string {
  const start = text.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`README has no "${heading}"`);
  const rest = text.slice(start + heading.length + 2);
  const next = rest.search(/^#{2,3} /m);
  return next < 0 ? rest : rest.slice(0, next);
}

/** blocks are the fenced code blocks of `text`, in order. */
function blocks(text: string): Block[] {
  const out: Block[] = [];
  const re = /^```(\w*)\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push({ lang: m[1] ?? '', lines: (m[2] ?? '').split('\n') });
  return out;
}

/** commands are a shell block's command lines: continuations joined, comments and blanks dropped. */
function commands(block: Block): string[] {
  const joined = block.lines.join('\n').replace(/\\\n\s*/g, '');
  return joined.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('README: running it for real', () => {
  const text = section(README, '## Running it for real');
  const all = blocks(text);
  const files = all.filter((b) => b.lang === 'yaml');
  const shell = all.filter((b) => b.lang === 'sh').flatMap(commands);
  let dir = '';
  let port = 0;
  let env: NodeJS.ProcessEnv = {};
  const daemons: { name: string; child: ChildProcess; logs: Record<string, unknown>[]; stderr: () => string }[] = [];
  const results = new Map<string, Ran>();

  const local = (line: string): string => line.replaceAll('127.0.0.1:8443', `127.0.0.1:${port}`);

  function run(line: string, ms = 60_000): Promise<Ran> {
    const child = spawn('sh', ['-c', line], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    return once(child, 'exit').then(([code]) => {
      clearTimeout(timer);
      return { code: code as number | null, stdout, stderr };
    });
  }

  async function daemon(line: string, ready: string): Promise<void> {
    const [cmd, ...args] = line.split(/\s+/);
    const child = spawn(join(BIN, cmd ?? ''), args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr?.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-10_000)));
    const logs: Record<string, unknown>[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream as NodeJS.ReadableStream }).on('line', (l) => {
        try {
          logs.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          // not a log line
        }
      });
    }
    daemons.push({ name: args[0] ?? '', child, logs, stderr: () => err });
    const end = Date.now() + 20_000;
    while (!logs.some((l) => l.msg === ready)) {
      if (child.exitCode !== null) throw new Error(`${line} exited ${child.exitCode}: ${err}`);
      if (Date.now() > end) throw new Error(`${line}: no "${ready}" in 20 s: ${err}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async function stopDaemons(): Promise<void> {
    // Connector first, then the relay: Ctrl-C in each terminal, as the README says.
    for (const d of [...daemons].reverse()) {
      if (d.child.exitCode === null && d.child.signalCode === null) {
        d.child.kill('SIGINT');
        const [code] = (await once(d.child, 'exit')) as [number | null];
        expect(code, `${d.name} after Ctrl-C: ${d.stderr()}`).toBe(0);
      }
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-readme-'));
    port = await freeLoopbackPort();
    // The workspace stands in for `npm install --global`: its bin directory comes first on PATH.
    // HOME is the test's own, so the Inspector's files stay out of the real one.
    env = { ...process.env, PATH: `${BIN}:${process.env.PATH ?? ''}`, HOME: dir, LOG_LEVEL: 'info' };
    for (const file of files) {
      const name = /^# (\S+\.yaml)\b/.exec(file.lines[0] ?? '')?.[1];
      if (!name) throw new Error(`a yaml block in the README does not start with "# <file>.yaml": ${file.lines[0]}`);
      await writeFile(join(dir, name), local(file.lines.join('\n')));
    }
    for (const line of shell) {
      if (line.startsWith('npm install --global ')) {
        const pkg = line.slice('npm install --global '.length).trim();
        const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
        expect(Object.keys(manifest.devDependencies), `${pkg} is what the workspace provides`).toContain(pkg);
        continue;
      }
      if (line.startsWith('sudo apt-get install -y ')) {
        // The machine provides these (.ci/run installs them): the programs must be there.
        const programs: Record<string, string> = { bubblewrap: 'bwrap', socat: 'socat' };
        for (const pkg of line.slice('sudo apt-get install -y '.length).trim().split(/\s+/)) {
          expect(programs[pkg], `the README installs ${pkg}`).toBeDefined();
          const found = (process.env.PATH ?? '').split(':').some((d) => existsSync(join(d, programs[pkg]!)));
          expect(found, `${programs[pkg]} (Debian ${pkg}) is installed`).toBe(true);
        }
        continue;
      }
      if (line.startsWith('switchboard relay ')) {
        await daemon(local(line), 'relay listening');
        continue;
      }
      if (line.startsWith('switchboard connector ')) {
        await daemon(local(line), 'link up');
        continue;
      }
      if (line.startsWith('switchboard audit verify')) await stopDaemons();
      const inspector = /^npx (@modelcontextprotocol\/inspector)@(\S+) /.exec(line);
      let cmd = local(line);
      if (inspector) {
        expect(inspector[2], 'the Inspector version the README names is the one the workspace installs').toBe(INSPECTOR_VERSION);
        cmd = `mcp-inspector ${local(line).slice(inspector[0].length)}`;
      }
      results.set(line, await run(cmd));
    }
  }, 150_000);

  afterAll(async () => {
    for (const d of daemons) if (d.child.exitCode === null) d.child.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const ran = (prefix: string): Ran => {
    const hit = [...results.entries()].filter(([line]) => line.startsWith(prefix));
    expect(hit.length, `exactly one README command starts with ${prefix}`).toBe(1);
    return hit[0]![1];
  };

  it('has the three files a one-host trial needs, and starts relay and connector from them', () => {
    expect(files.map((f) => f.lines[0]?.split(' ')[1])).toEqual(['relay.yaml', 'policy.yaml', 'connector.yaml']);
    expect(daemons.map((d) => d.name)).toEqual(['relay', 'connector']);
    const link = daemons[1]!.logs.find((l) => l.msg === 'link up');
    expect(link?.accepted).toEqual(['files']);
  });

  it('sets up the CA and identities with exit 0', () => {
    for (const prefix of ['switchboard ca init', 'switchboard identity issue spiffe://example.org/relay/main', 'switchboard identity issue spiffe://example.org/connector/files', 'switchboard identity issue spiffe://example.org/agent/support', 'mkdir -p shared']) {
      const r = ran(prefix);
      expect(r.code, `${prefix}: ${r.stderr}`).toBe(0);
    }
    expect(existsSync(join(dir, 'ids/support/svid.pem'))).toBe(true);
  });

  it('the Inspector lists exactly the read tools through agent stdio', () => {
    const r = ran('npx @modelcontextprotocol/inspector@2.12.0 --cli --method tools/list');
    expect(r.code, r.stderr).toBe(0);
    const names = (JSON.parse(r.stdout) as { tools: { name: string }[] }).tools.map((t) => t.name).sort();
    expect(names).toEqual(['directory_tree', 'get_file_info', 'list_allowed_directories', 'list_directory', 'list_directory_with_sizes', 'read_file', 'read_media_file', 'read_multiple_files', 'read_text_file', 'search_files']);
  });

  it('the Inspector calls the allowed tool and gets the file', () => {
    const r = ran('npx @modelcontextprotocol/inspector@2.12.0 --cli --method tools/call --tool-name read_text_file');
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { content: { type: string; text: string }[]; isError?: boolean };
    expect(result.isError).toBeUndefined();
    expect(result.content).toEqual([{ type: 'text', text: 'hello from the private side\n' }]);
  });

  it('the hidden write tool fails as the README says, and the file is unchanged', async () => {
    const r = ran('npx @modelcontextprotocol/inspector@2.12.0 --cli --method tools/call --tool-name write_file');
    expect(r.code).toBe(5);
    expect(r.stderr).toContain("Tool 'write_file' not found on server");
    expect(await readFile(join(dir, 'shared/hello.txt'), 'utf8')).toBe('hello from the private side\n');
  });

  it('audit tail shows the sessions, the allowed call with its rule and the refused roots request', () => {
    const r = ran('switchboard audit tail');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines.filter((l) => / session\.open spiffe:\/\/example\.org\/agent\/support → files via spiffe:\/\/example\.org\/connector\/files /.test(l))).toHaveLength(3);
    expect(lines.filter((l) => / request ALLOW spiffe:\/\/example\.org\/agent\/support → files tools\/call read_text_file rule=support-reads-files /.test(l))).toHaveLength(1);
    expect(lines.filter((l) => / request DENY spiffe:\/\/example\.org\/agent\/support → files roots\/list rule=\(default deny\)/.test(l))).toHaveLength(3);
    expect(r.stdout).not.toContain('write_file');
  });

  it('the trail verifies once the relay has stopped', () => {
    const r = ran('switchboard audit verify');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^OK: \d+ records, seq 1–\d+, \d+ checkpoints \(signatures verified\)/m);
  });
});
