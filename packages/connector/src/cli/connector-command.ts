import { Command, Option } from 'commander';
import { pino } from 'pino';
import { loadConnectorConfig, type ConnectorConfig } from '../config.js';
import { ConnectorError } from '../errors.js';
import type { Logger } from '@switchboard/common';
import { LOG_LEVELS, logLevel, logLevelHelp, reportError, type LogLevel } from '@switchboard/common/cli';
import { startConnector, type Connector, type StartConnectorOptions } from '../supervisor/connector.js';

const RUNTIME = 'CONNECTOR_ERR_RUNTIME';

/** ConnectorCommandOptions are the parsed flags of `switchboard connector`. */
export interface ConnectorCommandOptions {
  /** config is the path of `connector.yaml`. */
  config: string;
  logLevel?: LogLevel;
}

/** SignalSource is the part of `process` that delivers SIGTERM / SIGINT. */
export interface SignalSource {
  on(signal: 'SIGTERM' | 'SIGINT', handler: () => void): unknown;
  off(signal: 'SIGTERM' | 'SIGINT', handler: () => void): unknown;
}

/** RunConnectorDeps are the side effects of {@link runConnector}, injected so tests drive it in-process. */
export interface RunConnectorDeps {
  stderr: { write(chunk: string): unknown };
  /** logger replaces the pino logger the command makes on stderr. */
  logger?: Logger;
  signals?: SignalSource;
  /** onStarted is called with the running connector (tests). */
  onStarted?: (connector: Connector) => void;
  /** startOptions are passed to {@link startConnector} (tests). */
  startOptions?: StartConnectorOptions;
  /** env is where `LOG_LEVEL` is read (default `process.env`). */
  env?: Record<string, string | undefined>;
}

/**
 * runConnector is the whole of `switchboard connector`: load the config, start, run until SIGTERM
 * or SIGINT (then drain and stop) or until a fatal error. Resolves with the exit code: 0 after a
 * clean shutdown, 2 for an invalid config, 1 for a runtime failure (printed as `code: message`).
 */
export async function runConnector(opts: ConnectorCommandOptions, deps: RunConnectorDeps): Promise<number> {
  // Handlers go in before anything starts: a SIGTERM during startup (or the moment the connector
  // logs "connector started") must drain and exit 0, not hit the default action and kill it.
  const signals = deps.signals ?? process;
  let logger: Logger | undefined;
  let connector: Connector | undefined;
  let stopRequested = false;
  const onSignal = (): void => {
    logger?.info({}, 'signal received; draining');
    stopRequested = true;
    if (connector !== undefined) void connector.close();
  };
  signals.on('SIGTERM', onSignal);
  signals.on('SIGINT', onSignal);
  try {
    let config: ConnectorConfig;
    let level: LogLevel;
    try {
      level = logLevel(opts.logLevel, deps.env ?? process.env, 'info');
      config = await loadConnectorConfig(opts.config);
    } catch (err) {
      return reportError(err, deps, { invalidInput: () => true, fallbackCode: RUNTIME });
    }
    if (stopRequested) return 0; // stopped before anything started
    logger =
      deps.logger ??
      (pino(
        { level, base: undefined, redact: { paths: ['jwtSvid', '*.jwtSvid', 'authorization', '*.authorization'], censor: '[redacted]' } },
        pino.destination(2),
      ) as unknown as Logger);
    try {
      connector = await startConnector(config, { logger, ...deps.startOptions });
    } catch (err) {
      return reportError(err, deps, { invalidInput: (e) => e instanceof ConnectorError && e.code === 'CONNECTOR_ERR_CONFIG_INVALID', fallbackCode: RUNTIME });
    }
    if (stopRequested) void connector.close();
    else deps.onStarted?.(connector);
    await connector.wait();
    return 0;
  } catch (err) {
    reportError(err, deps, { fallbackCode: RUNTIME });
    return 1;
  } finally {
    signals.off('SIGTERM', onSignal);
    signals.off('SIGINT', onSignal);
  }
}

/**
 * connectorCommand builds `switchboard connector --config connector.yaml`. The exit code goes to
 * `setExit` when given (the `switchboard` CLI's convention), else to `process.exitCode`.
 *
 * @example
 * program.addCommand(connectorCommand(io, setExit));
 */
export function connectorCommand(io: { stderr: { write(chunk: string): unknown } } = process, setExit?: (code: number) => void): Command {
  return new Command('connector')
    .description('run the connector: dial out to the relays and serve the configured MCP servers')
    .requiredOption('-c, --config <path>', 'connector.yaml')
    .addOption(new Option('--log-level <level>', logLevelHelp('info')).choices(LOG_LEVELS))
    .action(async (opts: ConnectorCommandOptions) => {
      const code = await runConnector(opts, { stderr: io.stderr });
      if (setExit) setExit(code);
      else process.exitCode = code;
    });
}
