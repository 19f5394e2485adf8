import { Command, Option } from 'commander';
import { pino, type Logger } from 'pino';
import { loadRelayConfig } from '../config/relay-config.js';
import { LOG_LEVELS, logLevel, logLevelHelp, reportError, type LogLevel } from '@switchboard/common/cli';
import { startRelay, type Relay } from '../relay.js';
import { RELAY_REPORT } from './report.js';

/** RunRelayOptions are the `switchboard relay` flags. */
export interface RunRelayOptions {
  /** config is the path of relay.yaml. */
  config: string;
}

/** SignalSource is where the command listens for SIGTERM, SIGINT and SIGHUP (process, in production). */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

/** RunRelayDeps are what {@link runRelay} needs from its environment; tests pass fakes. */
export interface RunRelayDeps {
  stderr: { write(text: string): unknown };
  logger?: Logger;
  signals?: SignalSource;
  /** onStarted is called with the running relay (tests use it to reach the relay). */
  onStarted?: (relay: Relay) => void;
}

/**
 * runRelay runs `switchboard relay --config relay.yaml` until SIGTERM or SIGINT, then drains and
 * stops (a second SIGTERM during the drain changes nothing). SIGHUP reloads the policy (an invalid
 * file is logged and the old policy stays) and the issuer directory. Resolves
 * to the exit code: 0 after a clean stop, 2 for invalid input (config, policy, identity) with
 * `code: message` on stderr, 1 for a runtime failure.
 */
export async function runRelay(opts: RunRelayOptions, deps: RunRelayDeps): Promise<number> {
  const signals: SignalSource = deps.signals ?? process;
  // Handlers go in before anything starts: a SIGTERM while the relay starts up (or the moment it
  // logs "relay listening") must drain and exit 0, not hit the default action and kill it.
  let relay: Relay | undefined;
  let stopRequested = false;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const release = (): void => {
    signals.off('SIGTERM', stop);
    signals.off('SIGINT', stop);
    signals.off('SIGHUP', reload);
  };
  let stopping = false;
  const stop = (): void => {
    stopRequested = true;
    if (relay === undefined) return; // still starting: stopped right after it is up
    // A second SIGTERM (GNU timeout, supervisors) is still a drain: the handler stays installed
    // until the drain is over, so the signal's default action never cuts the final checkpoint.
    if (stopping) {
      deps.logger?.info({}, 'already draining; the relay stops when the drain is over');
      return;
    }
    stopping = true;
    relay.close().then(
      () => {
        release();
        finish(0);
      },
      (err: unknown) => {
        release();
        deps.stderr.write(`RELAY_ERR_RUNTIME: shutdown failed: ${(err as Error).message ?? String(err)}\n`);
        finish(1);
      },
    );
  };
  // SIGHUP reloads the policy and the issuer directory (a CA rotation without a restart).
  const reload = (): void => {
    if (relay === undefined || stopping) return;
    void relay.reloadPolicy();
    void relay.reloadIssuer();
  };
  signals.on('SIGTERM', stop);
  signals.on('SIGINT', stop);
  signals.on('SIGHUP', reload);
  try {
    const config = await loadRelayConfig(opts.config);
    relay = await startRelay(config, deps.logger ? { logger: deps.logger } : {});
  } catch (err) {
    release();
    return reportError(err, deps, RELAY_REPORT);
  }
  if (stopRequested) stop();
  else deps.onStarted?.(relay);
  return done;
}

/**
 * relayCommand builds `switchboard relay -c relay.yaml` for the CLI, with the connector's and the
 * agents' flags (`-c, --config`, `--log-level`). Logs go to stdout as JSON lines (pino); the level
 * is `--log-level`, else `LOG_LEVEL`, else `info`.
 */
export function relayCommand(): Command {
  return new Command('relay')
    .description('run the relay: the mTLS listener agents and connectors dial out to')
    .requiredOption('-c, --config <path>', 'relay.yaml')
    .addOption(new Option('--log-level <level>', logLevelHelp('info')).choices(LOG_LEVELS))
    .action(async (opts: RunRelayOptions & { logLevel?: LogLevel }) => {
      let level: LogLevel;
      try {
        level = logLevel(opts.logLevel, process.env, 'info');
      } catch (err) {
        process.exitCode = reportError(err, { stderr: process.stderr });
        return;
      }
      const logger = pino({ name: 'switchboard', level });
      process.exitCode = await runRelay({ config: opts.config }, { stderr: process.stderr, logger });
    });
}
