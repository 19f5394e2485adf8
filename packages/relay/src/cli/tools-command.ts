import { hostname, userInfo } from 'node:os';
import { Command } from 'commander';
import { PinStore, type ServerPins } from '@switchboard/guard';
import { loadRelayConfig } from '../config/relay-config.js';
import { isRelayError } from '../errors.js';
import { awaitResult, lockHolderAlive, readLock, submitRequest } from '../internal/pin-spool.js';
import { reportError, UsageError, type CliIo } from '@switchboard/common/cli';
import { RELAY_REPORT } from './report.js';

/** DEFAULT_PINS_PATH is the pin store the tools commands use without `--pins` or `--config`. */
export const DEFAULT_PINS_PATH = './pins.json';

/** ToolsOptions are the flags shared by `tools list` and `tools approve`. */
export interface ToolsOptions {
  /** pins is the pin store file. */
  pins?: string;
  /** config is a relay.yaml whose `pins.path` names the store. */
  config?: string;
  json?: boolean;
}

/** ToolsApproveOptions add the approver's name and how long to wait for a running relay. */
export interface ToolsApproveOptions extends ToolsOptions {
  by?: string;
  /** timeoutMs bounds the wait for a running relay's answer (default 10 s). */
  timeoutMs?: number;
}

async function pinsPath(opts: ToolsOptions): Promise<string> {
  if (opts.pins !== undefined && opts.config !== undefined) throw new UsageError('RELAY_ERR_USAGE', 'tools: give --pins or --config, not both');
  if (opts.pins !== undefined) return opts.pins;
  if (opts.config !== undefined) {
    const config = await loadRelayConfig(opts.config);
    if (config.pins === undefined) throw new UsageError('RELAY_ERR_USAGE', `tools: ${opts.config} configures no pins.path`);
    return config.pins.path;
  }
  return DEFAULT_PINS_PATH;
}

function fail(io: CliIo, err: unknown): number {
  // A pin store that cannot be read or written is a runtime failure; a bad relay.yaml is invalid input.
  return reportError(err, io, { ...RELAY_REPORT, invalidInput: (e) => isRelayError(e) });
}

function short(hash: string | null | undefined): string {
  return hash ? hash.slice(0, 12) : '-';
}

function describe(pins: ServerPins): string[] {
  const lines = [`server ${pins.server}`];
  const names = [...new Set([...Object.keys(pins.tools), ...Object.keys(pins.pending)])].sort();
  for (const name of names) {
    const pin = pins.tools[name];
    const p = pins.pending[name];
    if (p !== undefined) {
      const what = p.pinnedHash === null ? 'PENDING' : p.pinnedHash === p.seenHash ? 'UNAPPROVED' : 'DRIFT';
      const desc = p.summary.description ? `  "${p.summary.description.slice(0, 80)}"` : '';
      lines.push(`  ${what.padEnd(10)} ${name}  pinned ${short(p.pinnedHash)} → seen ${short(p.seenHash)} at ${p.seenAt}${desc}`);
    } else if (pin !== undefined) {
      lines.push(`  ${'pinned'.padEnd(10)} ${name}  ${short(pin.hash)}  first seen ${pin.firstSeen}${pin.approvedAt ? `, approved ${pin.approvedAt}` : ''}`);
    }
  }
  return lines;
}

/**
 * runToolsList prints the pins and the drifts waiting for approval, per server. Reading is safe
 * while a relay runs (the file is replaced atomically). Exit 0; 1 when the file is not a pin store.
 */
export async function runToolsList(opts: ToolsOptions & { server?: string }, io: CliIo): Promise<number> {
  try {
    const path = await pinsPath(opts);
    const store = await PinStore.open(path);
    const servers = store.list(opts.server);
    if (opts.json) {
      io.stdout.write(`${JSON.stringify({ pins: path, servers }, null, 2)}\n`);
      return 0;
    }
    if (servers.length === 0) {
      io.stdout.write(`${path}: nothing pinned${opts.server ? ` for ${opts.server}` : ''} yet\n`);
      return 0;
    }
    for (const s of servers) for (const line of describe(s)) io.stdout.write(`${line}\n`);
    const drifts = servers.reduce((n, s) => n + Object.keys(s.pending).length, 0);
    if (drifts > 0) io.stdout.write(`${drifts} definition${drifts === 1 ? '' : 's'} hidden until approved: switchboard tools approve <server> [<tool>…]\n`);
    return 0;
  } catch (err) {
    return fail(io, err);
  }
}

/**
 * runToolsApprove approves the pending definitions of `server` (all, or the named tools). While a
 * relay holds the pin store, the approval is sent to it (it applies it, writes the file, audits it
 * and tells the server's sessions to list again); otherwise the file is edited directly. Exit 0
 * when something was approved, 1 when nothing was pending or the relay did not answer, 2 on usage.
 */
export async function runToolsApprove(server: string, tools: string[], opts: ToolsApproveOptions, io: CliIo): Promise<number> {
  try {
    const path = await pinsPath(opts);
    const by = opts.by ?? `${safeUser()}@${hostname()}`;
    const lock = await readLock(path);
    let approved: { tool: string; hash: string; previousHash: string | null }[];
    if (lock !== undefined && lockHolderAlive(lock)) {
      const id = await submitRequest(path, { op: 'approve', server, tools: tools.length > 0 ? tools : null, by });
      const result = await awaitResult(path, id, opts.timeoutMs ?? 10_000);
      if (result === undefined) {
        io.stderr.write(`RELAY_ERR_RUNTIME: tools: the relay holding ${path} (pid ${lock.pid}) did not answer; nothing was approved\n`);
        return 1;
      }
      if (!result.ok) {
        io.stderr.write(`RELAY_ERR_RUNTIME: tools: ${result.error}\n`);
        return 1;
      }
      approved = result.approved;
    } else {
      const store = await PinStore.open(path);
      approved = store.approve(server, tools.length > 0 ? tools : undefined).map((e) => ({ tool: e.tool, hash: e.hash, previousHash: e.previousHash ?? null }));
      await store.close();
    }
    if (opts.json) io.stdout.write(`${JSON.stringify({ server, approved, by }, null, 2)}\n`);
    if (approved.length === 0) {
      io.stderr.write(`tools: nothing pending for ${server}${tools.length > 0 ? ` (${tools.join(', ')})` : ''}\n`);
      return 1;
    }
    if (!opts.json) for (const a of approved) io.stdout.write(`approved ${server}/${a.tool}: ${short(a.previousHash)} → ${short(a.hash)} (by ${by})\n`);
    return 0;
  } catch (err) {
    return fail(io, err);
  }
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

/**
 * toolsCommand builds `switchboard tools list [--pins <file>]` and
 * `switchboard tools approve <server> [<tool>…]`.
 */
export function toolsCommand(io: CliIo = process, setExit?: (code: number) => void): Command {
  const done = (code: number): void => {
    if (setExit) setExit(code);
    else process.exitCode = code;
  };
  const tools = new Command('tools').description('tool pinning: list pins and drifts, approve changed definitions');
  tools
    .command('list')
    .description('list pinned tool definitions and drifts waiting for approval, per server')
    .option('--pins <file>', `pin store (default: ${DEFAULT_PINS_PATH})`)
    .option('--config <relay.yaml>', 'take the pin store from relay.yaml (pins.path)')
    .option('--server <name>', 'only this server')
    .option('--json', 'print JSON')
    .action(async (opts: ToolsOptions & { server?: string }) => done(await runToolsList(opts, io)));
  tools
    .command('approve')
    .description('approve changed or new tool definitions of a server (all pending ones without tool names)')
    .argument('<server>')
    .argument('[tools...]')
    .option('--pins <file>', `pin store (default: ${DEFAULT_PINS_PATH})`)
    .option('--config <relay.yaml>', 'take the pin store from relay.yaml (pins.path)')
    .option('--by <name>', 'who approves, for the audit trail (default: user@host)')
    .option('--timeout <ms>', 'how long to wait for a running relay, in ms (default: 10000)', (v) => Number(v))
    .option('--json', 'print JSON')
    .action(async (server: string, names: string[], opts: ToolsApproveOptions & { timeout?: number }) => {
      const o: ToolsApproveOptions = { ...opts };
      if (opts.timeout !== undefined && Number.isFinite(opts.timeout)) o.timeoutMs = opts.timeout;
      done(await runToolsApprove(server, names, o, io));
    });
  return tools;
}
