import { get, type RequestOptions } from 'node:http';
import { get as httpsGet } from 'node:https';
import { PkiError, loadIdentityFiles } from '@switchboard/pki';
import { RelayTls } from '@switchboard/protocol';
import { Command, InvalidArgumentError } from 'commander';
import { reportError, UsageError, type CliIo } from '@switchboard/common/cli';
import { loadRelayConfig } from '../config/relay-config.js';
import type { InventoryServerView, RelayInventory } from '../console/inventory-view.js';
import { isRelayError } from '../errors.js';
import { RELAY_REPORT } from './report.js';

/** StatusOptions are the flags of `switchboard status`. */
export interface StatusOptions {
  /** relay is the admin listener's base URL (`http://127.0.0.1:9090`). */
  relay?: string;
  /** config is a relay.yaml whose `admin.listen` names the listener. */
  config?: string;
  json?: boolean;
  /** timeoutMs bounds the request (default 5 s). */
  timeoutMs?: number;
  /** identity is the identity directory to present to an mTLS admin listener (`https://`). */
  identity?: string;
  /** relayId is the SPIFFE ID (or pattern) the relay must present there (default: spiffe://<our trust domain>/relay/*). */
  relayId?: string;
}

/** STATUS_ATTENTION is the exit code when the relay answers but needs an operator: a failed trail, or definitions awaiting approval. */
export const STATUS_ATTENTION = 3;

async function adminUrl(opts: StatusOptions): Promise<URL> {
  if (opts.relay !== undefined && opts.config !== undefined) throw new UsageError('RELAY_ERR_USAGE', 'status: give --relay or --config, not both');
  let text = opts.relay;
  if (text === undefined && opts.config !== undefined) {
    const config = await loadRelayConfig(opts.config);
    if (config.admin === undefined) throw new UsageError('RELAY_ERR_USAGE', `status: ${opts.config} sets no admin.listen: the relay has no admin listener to ask`);
    text = `http://${config.admin.listen}`;
  }
  if (text === undefined) throw new UsageError('RELAY_ERR_USAGE', "status: give the relay's admin listener: --relay http://127.0.0.1:9090 (relay.yaml admin.listen), or --config relay.yaml");
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError('RELAY_ERR_USAGE', `status: --relay ${JSON.stringify(text)} is not a URL (expected http://127.0.0.1:<port>, the relay's admin.listen)`);
  }
  if (url.protocol === 'https:' && opts.identity === undefined) {
    throw new UsageError('RELAY_ERR_USAGE', 'status: an https:// admin listener requires mutual TLS: give --identity <dir> (an SVID listed under admin.mtls.viewers or admins)');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('RELAY_ERR_USAGE', `status: --relay must be the admin listener's http:// (loopback) or https:// (admin.mtls) URL, not ${url.protocol}//`);
  return new URL('/v1/inventory', url);
}

/** tlsFor builds the client side of mutual TLS to an mTLS admin listener: our SVID, the relay's checked as an X509-SVID. */
async function tlsFor(opts: StatusOptions): Promise<RequestOptions> {
  let identity;
  try {
    identity = await loadIdentityFiles(opts.identity as string);
  } catch (err) {
    throw new UsageError('RELAY_ERR_USAGE', `status: --identity ${opts.identity}: ${err instanceof PkiError ? `${err.code}: ${err.message}` : String(err)}`);
  }
  const tls = new RelayTls(identity, { ...(opts.relayId !== undefined ? { relayId: opts.relayId } : {}), untrusted: (m) => new Error(m) });
  // No shared agent: a TLS session resumed from another request would skip the relay's identity check.
  return { secureContext: tls.secureContext, checkServerIdentity: tls.checkServerIdentity, servername: '', agent: false } as RequestOptions;
}

function fetchInventory(url: URL, timeoutMs: number, tls: RequestOptions | undefined): Promise<RelayInventory> {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsGet : get)(url, { timeout: timeoutMs, ...tls }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          reject(new Error(`status: ${url.origin} answered ${res.statusCode}${res.statusCode === 404 ? ' (a relay older than the console, or not a relay admin listener)' : ''}: ${body.trim().slice(0, 200)}`));
          return;
        }
        try {
          resolve(JSON.parse(body) as RelayInventory);
        } catch {
          reject(new Error(`status: ${url.origin} did not answer JSON: is it a relay's admin listener?`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(new Error(`status: cannot reach the relay's admin listener at ${url.origin}: ${err.code ?? err.message}${err.code === 'ECONNREFUSED' ? ' (is the relay running, with admin.listen set in relay.yaml?)' : ''}`));
    });
  });
}

function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function serverLines(s: InventoryServerView): string[] {
  const where = s.connectors.length === 0 ? 'no connector' : s.connectors.map((c) => `${c.id} (${plural(c.sessions, 'session')})`).join(', ');
  const head = `  ${s.name.padEnd(16)} ${(s.online ? 'online' : 'OFFLINE').padEnd(8)} ${s.zone ? `zone ${s.zone}  ` : ''}${where}`;
  const states = new Map<string, number>();
  for (const t of s.tools) states.set(t.state, (states.get(t.state) ?? 0) + 1);
  const summary = [...states].map(([k, v]) => `${v} ${k === 'drifted' || k === 'pending' || k === 'unapproved' ? k.toUpperCase() : k}`).join(', ');
  const lines = [head, `    ${s.tools.length === 0 ? (s.toolsSeenAt ? 'no tools' : 'no tools/list seen yet') : `${plural(s.tools.length, 'tool')}: ${summary}`} (pinning ${s.pinning})`];
  for (const t of s.tools) {
    if (t.state === 'pinned' || t.state === 'unpinned') continue;
    const what = t.changes?.length ? `${t.changes.map((c) => c.field).join(', ')} changed` : t.state === 'pending' ? 'new, not approved yet' : 'not approved yet';
    lines.push(`    ${t.state.toUpperCase()} ${t.name}: ${what} (seen ${t.seenHash?.slice(0, 12) ?? '?'}); approve: switchboard tools approve ${s.name} ${t.name}`);
  }
  return lines;
}

/** formatStatus renders the inventory for a terminal. */
export function formatStatus(inv: RelayInventory, now = Date.now()): string[] {
  const p = inv.policy;
  const a = inv.audit;
  const c = inv.counts;
  const out = [
    `relay ${inv.relay.id}  up ${ago(inv.relay.startedAt, now)}  ${inv.relay.url}`,
    `policy ${p.source ?? '(given in code)'}  sha256 ${p.digest.slice(0, 12)}…  loaded ${ago(p.loadedAt, now)} ago  ${plural(p.servers, 'server')}, ${plural(p.rules, 'rule')}, ${plural(p.revoked, 'revocation')}`,
    ...p.warnings.map((w) => `  warning: ${w}`),
    `audit trail ${a.available ? 'recording' : 'FAILED: recorded calls are refused (-32050)'}  ${a.durability}  ${a.signed ? 'signed' : 'UNSIGNED'}  seq ${a.lastSeq} (${a.durableSeq} on disk)${a.path ? `  ${a.path}` : ''}`,
    `  last checkpoint: ${a.lastCheckpoint ? `covers seq ${a.lastCheckpoint.coversSeq}, ${ago(a.lastCheckpoint.time, now)} ago` : a.signed ? 'none since start' : 'none (unsigned trail)'}`,
    `  last verified: ${a.lastVerify ? `${a.lastVerify.ok ? 'OK' : 'FAILED'} ${ago(a.lastVerify.at, now)} ago: ${a.lastVerify.message}` : 'not since start (switchboard audit verify, or the console)'}`,
    `servers (${inv.servers.filter((s) => s.online).length} of ${inv.servers.length} online):`,
    ...inv.servers.flatMap(serverLines),
    `sessions (${inv.sessions.length}):`,
    ...inv.sessions.map((s) => `  ${s.agent} → ${s.server}  ${s.sessionId}  since ${ago(s.since, now)}  ${plural(s.calls, 'call')}, ${s.denials} denied`),
    `since start: ${c.allowed} allowed, ${c.denied} denied, ${plural(c.rateLimited, 'rate-limit trip')}, ${plural(c.egressDenied, 'egress denial')}, ${plural(c.drifts, 'drift')}`,
  ];
  return out;
}

/** needsAttention is true when the audit trail failed or a definition waits for approval. */
export function needsAttention(inv: RelayInventory): boolean {
  return !inv.audit.available || inv.servers.some((s) => s.tools.some((t) => t.state === 'drifted' || t.state === 'pending' || t.state === 'unapproved'));
}

/**
 * runStatus prints the relay's inventory — servers, tools and drifts, sessions, trail health, the
 * policy in force — from its admin listener. Exit 0; 3 when it needs an operator (failed trail,
 * definitions awaiting approval); 1 when the relay cannot be reached; 2 on usage.
 */
export async function runStatus(opts: StatusOptions, io: CliIo): Promise<number> {
  try {
    const url = await adminUrl(opts);
    const tls = url.protocol === 'https:' ? await tlsFor(opts) : undefined;
    const inv = await fetchInventory(url, opts.timeoutMs ?? 5000, tls);
    if (opts.json) io.stdout.write(`${JSON.stringify(inv, null, 2)}\n`);
    else for (const line of formatStatus(inv)) io.stdout.write(`${line}\n`);
    return needsAttention(inv) ? STATUS_ATTENTION : 0;
  } catch (err) {
    return reportError(err, io, { ...RELAY_REPORT, invalidInput: (e) => isRelayError(e) });
  }
}

/** statusCommand builds `switchboard status --relay <admin-url> [--json]`. */
export function statusCommand(io: CliIo = process, setExit?: (code: number) => void): Command {
  return new Command('status')
    .description("the relay's live inventory from its admin listener: servers, tools and drifts, sessions, audit trail health, the policy in force (exit 3: needs attention)")
    .option('--relay <admin-url>', "the relay's admin listener, as relay.yaml admin.listen (e.g. http://127.0.0.1:9090)")
    .option('-c, --config <file>', 'relay.yaml: take the admin listener from its admin.listen')
    .option('--json', 'print the inventory as JSON (GET /v1/inventory)')
    .option('--identity <dir>', 'an identity directory to present to an https:// (admin.mtls) listener')
    .option('--relay-id <id>', 'the SPIFFE ID (or pattern) the relay must present there (default: spiffe://<trust domain>/relay/*)')
    .option('--timeout <ms>', 'how long to wait for the answer (default: 5000)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a whole number of milliseconds, at least 1');
      return n;
    })
    .action(async (opts: StatusOptions & { timeout?: number }) => {
      const code = await runStatus({ ...opts, ...(opts.timeout !== undefined ? { timeoutMs: opts.timeout } : {}) }, io);
      if (setExit) setExit(code);
      else process.exitCode = code;
    });
}
