import { Command, CommanderError } from 'commander';
import { auditCommand } from '@switchboard/audit/cli';
import type { CliIo } from '@switchboard/common/cli';
import { caCommand, identityCommand } from '@switchboard/pki/cli';
import { policyCommand, relayCommand, statusCommand, toolsCommand } from '@switchboard/relay';
import { connectorCommand } from '@switchboard/connector';
import { agentCommand } from '@switchboard/agent-sdk';
import { demoCommand } from './demo.js';
import { enrollCommand } from './enroll.js';
import { promptSecret } from './prompt.js';

/**
 * main runs the `switchboard` command with `argv` (as `process.argv`) and resolves to the exit
 * code: 0 success, 1 runtime failure, 2 invalid input or usage.
 */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let exitCode = 0;
  const setExit = (code: number): void => {
    exitCode = code;
  };
  const program = new Command('switchboard')
    .description('Switchboard: an outbound-only, zero-trust tunnel for MCP servers')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  program.addCommand(caCommand(io, setExit));
  program.addCommand(identityCommand(io, setExit));
  program.addCommand(enrollCommand(io, setExit));
  program.addCommand(relayCommand());
  program.addCommand(policyCommand(io, setExit));
  program.addCommand(toolsCommand(io, setExit));
  program.addCommand(statusCommand(io, setExit));
  program.addCommand(connectorCommand(io, setExit));
  program.addCommand(agentCommand(io, setExit));
  program.addCommand(auditCommand(io, setExit));
  program.addCommand(demoCommand(io, setExit));
  configureTree(program, io);
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exit code 0.
      return err.exitCode === 0 ? 0 : 2;
    }
    throw err;
  }
  // `relay` reports its exit code through process.exitCode (it runs until a signal).
  if (exitCode === 0 && typeof process.exitCode === 'number') exitCode = process.exitCode;
  return exitCode;
}

// Commander settings do not reach commands added before they were set: apply them to the tree,
// so a usage error anywhere exits 2 instead of calling process.exit(1).
function configureTree(cmd: Command, io: CliIo): void {
  for (const sub of cmd.commands) {
    sub.exitOverride().configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
    configureTree(sub, io);
  }
}

function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    promptSecret: process.stdin.isTTY ? promptSecret : undefined,
  };
}
