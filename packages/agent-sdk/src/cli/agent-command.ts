import type { Readable, Writable } from 'node:stream';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { runStdioBridge, type StdioBridgeOptions } from '../bridge/stdio.js';
import { startHttpBridge, type HttpBridge } from '../bridge/http.js';
import type { Logger } from '@switchboard/common';
import { LOG_LEVELS, logLevel, logLevelHelp, reportError, UsageError, type LogLevel } from '@switchboard/common/cli';

/** AgentStdioOptions are the flags of `switchboard agent stdio`. */
export interface AgentStdioOptions {
  /** relay is one relay URL or several (`--relay` repeated): each session opens on the first that accepts it. */
  relay: string | string[];
  server: string;
  /** identity is the identity directory (`svid.pem`, `svid_key.pem`, `bundle.pem`). */
  identity?: string;
  /** workloadApi takes the identity from the SPIFFE Workload API: `true` (SPIFFE_ENDPOINT_SOCKET) or the endpoint. */
  workloadApi?: string | boolean;
  /** enrollToken, enrollUrl and enrollBundle get the first identity into an empty `identity` directory. */
  enrollToken?: string;
  enrollUrl?: string;
  enrollBundle?: string;
  relayId?: string;
  logLevel?: LogLevel;
  /** renew is false with `--no-renew`: the identity is not renewed over the relay. */
  renew?: boolean;
  /** reopen is false with `--no-reopen` (`agent stdio`): a lost relay session ends the bridge. */
  reopen?: boolean;
  /** resume is false with `--no-resume`: a lost relay session is not resumed (a new one is opened, unless --no-reopen). */
  resume?: boolean;
}

/** AgentHttpOptions are the flags of `switchboard agent http`. */
export interface AgentHttpOptions extends AgentStdioOptions {
  /** listen is the loopback `host:port` to serve on. */
  listen: string;
}

/** AgentCliDeps are the side effects of the agent commands, injected so tests drive them in-process. */
export interface AgentCliDeps {
  stdin: Readable;
  stdout: Writable;
  stderr: { write(chunk: string): unknown };
  /** logger replaces the pino logger on stderr (stdout is reserved for MCP). */
  logger?: Logger;
  signals?: { once(signal: 'SIGTERM' | 'SIGINT', handler: () => void): unknown; off(signal: 'SIGTERM' | 'SIGINT', handler: () => void): unknown };
  /** onListening is called with the HTTP bridge once it listens (tests). */
  onListening?: (bridge: HttpBridge) => void;
  /** env is where `LOG_LEVEL` is read (default `process.env`). */
  env?: Record<string, string | undefined>;
}

function makeLogger(flag: LogLevel | undefined, env: Record<string, string | undefined>, fallback: LogLevel): Logger {
  // stderr only: stdout carries the MCP stream.
  return pino({ level: logLevel(flag, env, fallback), base: undefined }, pino.destination(2)) as unknown as Logger;
}

/**
 * identityOptions turns the identity flags into the bridges' options: `--identity <dir>` (with the
 * `--enroll-*` trio to enroll it first) or `--workload-api [endpoint]`, exactly one of them.
 * Throws TypeError (exit 2) naming the rule.
 */
export function identityOptions(opts: AgentStdioOptions): Pick<StdioBridgeOptions, 'identity' | 'enroll'> {
  const enroll = [opts.enrollToken, opts.enrollUrl, opts.enrollBundle];
  const some = enroll.some((v) => v !== undefined);
  if (opts.identity !== undefined && opts.workloadApi !== undefined) throw new TypeError('agent: give either --identity <dir> or --workload-api [endpoint], not both');
  if (opts.workloadApi !== undefined) {
    if (some) throw new TypeError('agent: --enroll-token needs --identity <dir> (the enrolled identity is written there), not --workload-api');
    return { identity: { workloadApi: typeof opts.workloadApi === 'string' ? { endpoint: opts.workloadApi } : {} } };
  }
  if (opts.identity === undefined) throw new TypeError('agent: give --identity <dir> (svid.pem, svid_key.pem, bundle.pem) or --workload-api [endpoint] (the SPIFFE Workload API)');
  if (!some) return { identity: opts.identity };
  if (enroll.some((v) => v === undefined)) throw new TypeError('agent: enrollment needs all three of --enroll-token <file>, --enroll-url <https://host:port> and --enroll-bundle <bundle.pem>');
  return { identity: opts.identity, enroll: { token: opts.enrollToken as string, url: opts.enrollUrl as string, bundle: opts.enrollBundle as string } };
}

/** report prints `code: message` and returns the exit code: a caller mistake (TypeError: bad flags) exits 2. */
function report(stderr: AgentCliDeps['stderr'], err: unknown): number {
  const e = err instanceof TypeError ? new UsageError('AGENT_ERR_INVALID_ARGUMENT', err.message) : err;
  return reportError(e, { stderr }, { fallbackCode: 'AGENT_ERR_RUNTIME' });
}

/**
 * runAgentStdio is `switchboard agent stdio`: bridge stdin/stdout to a server behind the relay.
 * Resolves with the exit code: 0 when stdin closes, 1 when the relay refuses or ends the session
 * (a `code: message` line on stderr says why), 2 for invalid flags.
 */
export async function runAgentStdio(opts: AgentStdioOptions, deps: AgentCliDeps): Promise<number> {
  let logger: Logger;
  try {
    logger = deps.logger ?? makeLogger(opts.logLevel, deps.env ?? process.env, 'warn');
  } catch (err) {
    return report(deps.stderr, err);
  }
  try {
    const { exitCode, error } = await runStdioBridge({
      relay: opts.relay,
      server: opts.server,
      ...identityOptions(opts),
      ...(opts.relayId !== undefined ? { relayId: opts.relayId } : {}),
      ...(opts.renew === false ? { renew: false } : {}),
      ...(opts.reopen === false ? { reopen: false } : {}),
      ...(opts.resume === false ? { resume: false } : {}),
      stdin: deps.stdin,
      stdout: deps.stdout,
      logger,
    });
    if (error) report(deps.stderr, error);
    return exitCode;
  } catch (err) {
    return report(deps.stderr, err);
  }
}

/**
 * runAgentHttp is `switchboard agent http`: a loopback Streamable-HTTP endpoint, one relay session
 * per MCP session, until SIGTERM / SIGINT. Resolves with the exit code (2 for invalid flags, 1 when
 * it cannot start).
 */
export async function runAgentHttp(opts: AgentHttpOptions, deps: AgentCliDeps): Promise<number> {
  let logger: Logger;
  try {
    logger = deps.logger ?? makeLogger(opts.logLevel, deps.env ?? process.env, 'info');
  } catch (err) {
    return report(deps.stderr, err);
  }
  let bridge: HttpBridge;
  try {
    bridge = await startHttpBridge({
      listen: opts.listen,
      relay: opts.relay,
      server: opts.server,
      ...identityOptions(opts),
      ...(opts.relayId !== undefined ? { relayId: opts.relayId } : {}),
      ...(opts.renew === false ? { renew: false } : {}),
      logger,
    });
  } catch (err) {
    return report(deps.stderr, err);
  }
  deps.stderr.write(`switchboard agent http: serving ${opts.server} at ${bridge.url}\n`);
  deps.onListening?.(bridge);
  const signals = deps.signals ?? process;
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      signals.off('SIGTERM', stop);
      signals.off('SIGINT', stop);
      resolve();
    };
    signals.once('SIGTERM', stop);
    signals.once('SIGINT', stop);
  });
  await bridge.close();
  return 0;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function common(cmd: Command, quietByDefault: boolean): Command {
  return cmd
    .requiredOption('--relay <url>', 'relay URL, wss://host:port (required); repeat for failover (tried in order, with backoff)', collect)
    .requiredOption('--server <name>', 'MCP server name in the relay policy (required)')
    .option('--identity <dir>', 'identity directory (svid.pem, svid_key.pem, bundle.pem)')
    .option('--workload-api [endpoint]', 'take the identity from the SPIFFE Workload API instead (default endpoint: $SPIFFE_ENDPOINT_SOCKET)')
    .option('--enroll-token <file>', 'enroll an empty --identity directory first with this single-use token (switchboard identity token)')
    .option('--enroll-url <url>', "with --enroll-token: the relay's enrollment listener, https://host:port")
    .option('--enroll-bundle <file>', "with --enroll-token: the trust domain's bundle.pem, to authenticate the relay")
    .option('--relay-id <spiffe-id>', 'SPIFFE ID (or pattern) the relay must present (default: spiffe://<our trust domain>/relay/*)')
    .option('--no-renew', 'do not renew the identity over the relay (POST /v1/renew at half its lifetime)')
    .addOption(new Option('--log-level <level>', logLevelHelp(quietByDefault ? 'warn' : 'info', ', to stderr')).choices(LOG_LEVELS));
}

/**
 * agentCommand builds `switchboard agent stdio|http`. Messages go to `io.stderr`; the exit code
 * goes to `setExit` when given (the `switchboard` CLI's convention), else to `process.exitCode`.
 *
 * @example
 * program.addCommand(agentCommand(io, setExit));
 * // switchboard agent stdio --relay wss://relay.example.org:8443 --server crm --identity ./ids/support
 */
export function agentCommand(io: { stderr: { write(chunk: string): unknown } } = process, setExit?: (code: number) => void): Command {
  const exit = (code: number): void => {
    if (setExit) setExit(code);
    else process.exitCode = code;
  };
  const agent = new Command('agent').description('reach an MCP server through a Switchboard relay');
  // The MCP stream is the process's own stdin/stdout whatever `io` is: clients spawn us and pipe them.
  agent.addCommand(
    common(new Command('stdio').description('bridge a stdio MCP client (Claude Desktop, Cursor, VS Code, MCP Inspector) to the relay'), true)
      .option('--no-reopen', 'end the bridge when the relay session is lost, instead of opening a new one through the next relay')
      .option('--no-resume', 'do not resume the same server session through another relay when the relay in use is lost')
      .action(
      async (opts: AgentStdioOptions) => exit(await runAgentStdio(opts, { stdin: process.stdin, stdout: process.stdout, stderr: io.stderr })),
    ),
  );
  agent.addCommand(
    common(new Command('http').description('serve a loopback Streamable-HTTP MCP endpoint that reaches the relay'), false)
      .requiredOption('--listen <host:port>', 'loopback address to listen on, e.g. 127.0.0.1:7000')
      .action(async (opts: AgentHttpOptions) => exit(await runAgentHttp(opts, { stdin: process.stdin, stdout: process.stdout, stderr: io.stderr }))),
  );
  return agent;
}
