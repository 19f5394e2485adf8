import { execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, lstat, mkdtemp, readlink, realpath, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { EgressPolicy, type EgressRule } from './egress-rules.js';

const run = promisify(execFile);

/** FilesystemAccess is what a contained server may see of the host's files besides the system's. */
export interface FilesystemAccess {
  /** read are paths mounted read-only (absolute). */
  readonly read: readonly string[];
  /** write are paths mounted read-write (absolute). */
  readonly write: readonly string[];
}

/** Containment is one stdio server's confinement, from connector.yaml `egress` and `filesystem`. */
export interface Containment {
  /** egress is `any` (the host's network, knowingly) or the allowed destinations; `[]` is no network. */
  readonly egress: 'any' | readonly EgressRule[];
  /** filesystem is `any` (the host's files, knowingly) or what it may read and write. */
  readonly filesystem: 'any' | FilesystemAccess;
}

/** isContained: anything at all to enforce (both `any` means the server runs as a plain process). */
export function isContained(c: Containment): boolean {
  return c.egress !== 'any' || c.filesystem !== 'any';
}

/** SandboxTools are the host programs containment runs on. */
export interface SandboxTools {
  bwrap: string;
  /** socat forwards the proxy port inside the sandbox to the connector's unix socket (only needed with egress rules). */
  socat: string | undefined;
}

/** SandboxUnavailableError says what is missing for containment and how to install it. */
export class SandboxUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SandboxUnavailableError';
  }
}

/** PROXY_PORT is the loopback port inside the sandbox where the egress proxy answers. */
export const PROXY_PORT = 3128;
/** SANDBOX_RUN_DIR is where the session's private directory (the proxy socket) appears inside. */
export const SANDBOX_RUN_DIR = '/run/switchboard';

const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
// Public configuration a program needs to run and to verify TLS; never /etc/shadow, ssh or sudoers.
const SYSTEM_ETC = ['/etc/ssl', '/etc/ca-certificates', '/etc/ca-certificates.conf', '/etc/pki', '/etc/alternatives', '/etc/localtime', '/etc/nsswitch.conf', '/etc/passwd', '/etc/group', '/etc/ld.so.cache', '/etc/ld.so.conf', '/etc/ld.so.conf.d', '/etc/mime.types'];
const NETWORK_ETC = ['/etc/resolv.conf', '/etc/hosts', '/etc/gai.conf', '/etc/host.conf'];

let probed: Promise<SandboxTools> | undefined;

/**
 * sandboxTools finds bubblewrap (and socat) and checks, once per process, that bubblewrap can make
 * the namespaces containment uses. Rejects with {@link SandboxUnavailableError} naming what is
 * missing and how to get it; nothing then runs uncontained.
 */
export function sandboxTools(): Promise<SandboxTools> {
  probed ??= probeSandbox();
  return probed;
}

const DEFAULT_SEARCH = (): string[] => [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin'].filter((d) => d !== '');

async function onPath(name: string, search: readonly string[]): Promise<string | undefined> {
  for (const dir of search) {
    try {
      await access(join(dir, name), fsConstants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * probeSandbox is {@link sandboxTools} without the cache, looking for the tools in `search` (the
 * PATH, /usr/bin and /usr/local/bin by default).
 */
export async function probeSandbox(search: readonly string[] = DEFAULT_SEARCH()): Promise<SandboxTools> {
  if (process.platform !== 'linux') throw new SandboxUnavailableError(`containment needs Linux (bubblewrap); this is ${process.platform}. Set egress: any and filesystem: any on the server to run it uncontained, knowingly`);
  const bwrap = await onPath('bwrap', search);
  if (!bwrap) throw new SandboxUnavailableError('bubblewrap (bwrap) is not installed: apt-get install bubblewrap (Debian, Ubuntu) or dnf install bubblewrap (Fedora)');
  try {
    await run(bwrap, ['--unshare-all', '--die-with-parent', ...(await systemMounts()), '--proc', '/proc', '--dev', '/dev', '--', '/usr/bin/true'], { timeout: 10_000 });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? (err as Error).message).trim();
    throw new SandboxUnavailableError(
      `bubblewrap cannot create the sandbox's namespaces (${stderr.split('\n')[0]}): unprivileged user namespaces must be allowed (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu ≥ 23.10 kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap), or run the connector as root`,
    );
  }
  return { bwrap, socat: await onPath('socat', search) };
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

async function systemMounts(): Promise<string[]> {
  const out: string[] = [];
  for (const d of SYSTEM_DIRS) {
    let st;
    try {
      st = await lstat(d);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) out.push('--symlink', await readlink(d), d);
    else out.push('--ro-bind', d, d);
  }
  return out;
}

/** within: `p` is `dir` or below it. */
export function within(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

/**
 * programRoots are the directories a server's program needs to read besides the system's: the
 * install prefix of the Node.js running the connector (servers are mostly Node), and for the
 * command and each argument that is an existing file, what Node's module resolution reads for it
 * ({@link packageRoots}).
 */
export async function programRoots(command: string, args: readonly string[], cwd: string): Promise<string[]> {
  const roots = new Set<string>();
  roots.add(dirname(dirname(await realpath(process.execPath))));
  const candidates = [command, ...args.filter((a) => !a.startsWith('-'))].map((a) => (a.startsWith('/') || a.startsWith('.') ? resolve(cwd, a) : a));
  for (const c of candidates) {
    if (!c.startsWith('/')) continue;
    let real: string;
    try {
      real = await realpath(c);
    } catch {
      continue;
    }
    for (const p of new Set([c, real])) {
      const st = await stat(p).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) continue; // a data directory (e.g. server-filesystem's root): filesystem.read/write decide
      for (const r of await packageRoots(p)) roots.add(r);
    }
  }
  return [...roots].filter((r) => !SYSTEM_DIRS.some((d) => within(r, d)) && r !== '/');
}

/**
 * packageRoots are what Node's module resolution reads for `file`: inside a `node_modules` tree,
 * the top `node_modules` directory; otherwise its package root (the nearest package.json, else its
 * directory) and every `node_modules` directory above it (a pnpm workspace's links point there).
 */
async function packageRoots(file: string): Promise<string[]> {
  const parts = file.split(sep);
  const nm = parts.indexOf('node_modules');
  if (nm > 0) return [parts.slice(0, nm + 1).join(sep)];
  let root = dirname(file);
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    if (await exists(join(dir, 'package.json'))) {
      root = dir;
      break;
    }
  }
  const out = [root];
  for (let dir = dirname(root); dir !== dirname(dir); dir = dirname(dir)) {
    if (await exists(join(dir, 'node_modules'))) out.push(join(dir, 'node_modules'));
  }
  return out;
}

/** SandboxPlan is a server's containment, resolved at start: what to mount, what to hide. */
export interface SandboxPlan {
  readonly containment: Containment;
  readonly tools: SandboxTools;
  /** roots are the program's directories (read-only). */
  readonly roots: readonly string[];
  /** hidden are the connector's own secrets (identity, enrollment token, its config) — never visible. */
  readonly hidden: readonly { path: string; dir: boolean }[];
  readonly cwd: string;
  /** systemMounts are the bwrap arguments for the system directories (read-only binds, symlinks). */
  readonly systemMounts: readonly string[];
  /** policy decides destinations against `egress` (absent for `egress: any`; with no rules it refuses all). */
  readonly policy: EgressPolicy | undefined;
  /** emptyFile is mounted over each hidden file (an empty regular file; /dev/null would not open on a nodev mount). */
  readonly emptyFile: string;
}

let empty: Promise<string> | undefined;
/** emptyFile is one empty, read-only file per process, to mount over the files a sandbox must not see. */
function emptyFile(): Promise<string> {
  empty ??= mkdtemp(join(tmpdir(), 'switchboard-empty-')).then(async (d) => {
    const f = join(d, 'empty');
    await writeFile(f, '', { mode: 0o444 });
    return f;
  });
  return empty;
}

/**
 * planSandbox resolves a server's containment at start: the sandbox tools (or why there are none),
 * the program's directories, the configured paths (each must exist), and the connector's secrets
 * to hide. Rejects with {@link SandboxUnavailableError} or a TypeError naming the path.
 */
export async function planSandbox(containment: Containment, command: string, args: readonly string[], cwd: string, secrets: readonly string[]): Promise<SandboxPlan> {
  const tools = await sandboxTools();
  if (containment.egress !== 'any' && !tools.socat) {
    throw new SandboxUnavailableError('socat is not installed (it carries the egress proxy into the sandbox): apt-get install socat');
  }
  if (containment.filesystem !== 'any') {
    for (const [key, list] of [['read', containment.filesystem.read], ['write', containment.filesystem.write]] as const) {
      for (const p of list) {
        if (!(await exists(p))) throw new TypeError(`filesystem.${key}: ${p} does not exist`);
      }
    }
  }
  const hidden: { path: string; dir: boolean }[] = [];
  for (const p of secrets) {
    const st = await stat(p).catch(() => undefined);
    if (st) hidden.push({ path: p, dir: st.isDirectory() });
  }
  return Object.freeze({
    containment,
    tools,
    roots: Object.freeze(await programRoots(command, args, cwd)),
    hidden: Object.freeze(hidden),
    cwd,
    systemMounts: Object.freeze(await systemMounts()),
    policy: containment.egress === 'any' ? undefined : new EgressPolicy(containment.egress),
    emptyFile: await emptyFile(),
  });
}

/** BwrapCommand is what to spawn for one contained session. */
export interface BwrapCommand {
  command: string;
  args: string[];
  /** env is added to the server's environment (the proxy variables, HOME). */
  env: Record<string, string>;
}

/**
 * bwrapCommand builds the bubblewrap command line for one session: every namespace unshared (the
 * network too unless `egress: any`), the system's directories and the program read-only, the
 * configured paths, a private /tmp, the connector's secrets hidden, and with egress rules the
 * proxy reachable at 127.0.0.1:{@link PROXY_PORT} and DNS at 127.0.0.1:53 through socat.
 * `sessionDir` holds the proxy and DNS sockets and the sandbox's resolv.conf and hosts.
 */
export function bwrapCommand(plan: SandboxPlan, command: string, args: readonly string[], sessionDir: string | undefined): BwrapCommand {
  const { containment, tools } = plan;
  const a: string[] = ['--unshare-all', '--die-with-parent', '--new-session'];
  if (containment.egress === 'any') a.push('--share-net');
  const env: Record<string, string> = {};
  if (containment.filesystem === 'any') {
    a.push('--bind', '/', '/', '--dev', '/dev', '--proc', '/proc');
  } else {
    a.push(...plan.systemMounts);
    for (const p of [...SYSTEM_ETC, ...(containment.egress === 'any' ? NETWORK_ETC : [])]) a.push('--ro-bind-try', p, p);
    a.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--dir', '/run');
    for (const r of plan.roots) a.push('--ro-bind', r, r);
    for (const r of containment.filesystem.read) a.push('--ro-bind', r, r);
    for (const w of containment.filesystem.write) a.push('--bind', w, w);
    // The working directory is not readable unless a path above names it (it is often where the
    // connector's own files live): an empty one stands in, so the server starts and finds nothing.
    const covered = [...plan.roots, ...containment.filesystem.read, ...containment.filesystem.write].some((d) => within(plan.cwd, d));
    if (!covered) a.push('--dir', plan.cwd);
    env.HOME = '/tmp';
  }
  for (const h of plan.hidden) {
    if (h.dir) a.push('--tmpfs', h.path);
    else a.push('--ro-bind', plan.emptyFile, h.path);
  }
  a.push('--chdir', plan.cwd);
  // A pre-spawned process reads its agent file there (read-only); with egress rules the proxy sockets are there too.
  if (sessionDir) a.push('--ro-bind', sessionDir, SANDBOX_RUN_DIR);
  if (containment.egress !== 'any') {
    if (!sessionDir || !tools.socat) throw new SandboxUnavailableError('socat is not installed (it carries the egress proxy and DNS into the sandbox): apt-get install socat');
    // The network namespace has only its loopback: the proxy and DNS are socat forwards to this
    // session's sockets; binding port 53 there needs CAP_NET_BIND_SERVICE, in that namespace only.
    a.push('--ro-bind', join(sessionDir, 'resolv.conf'), '/etc/resolv.conf', '--ro-bind', join(sessionDir, 'hosts'), '/etc/hosts');
    a.push('--cap-add', 'CAP_NET_BIND_SERVICE');
    const proxy = `http://127.0.0.1:${PROXY_PORT}`;
    Object.assign(env, { HTTP_PROXY: proxy, HTTPS_PROXY: proxy, http_proxy: proxy, https_proxy: proxy, ALL_PROXY: proxy, all_proxy: proxy, NO_PROXY: '', no_proxy: '', NODE_USE_ENV_PROXY: '1' });
    const quiet = '</dev/null >/dev/null 2>&1 &';
    const forwards =
      `${tools.socat} TCP4-LISTEN:${PROXY_PORT},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:${SANDBOX_RUN_DIR}/egress.sock ${quiet} ` +
      `${tools.socat} -T5 UDP4-RECVFROM:53,bind=127.0.0.1,fork UNIX-CONNECT:${SANDBOX_RUN_DIR}/dns.sock ${quiet}`;
    a.push('--', '/bin/sh', '-c', `${forwards} exec "$@"`, 'sh', command, ...args);
  } else {
    a.push('--', command, ...args);
  }
  return { command: tools.bwrap, args: a, env };
}
