import { Command } from 'commander';
import type { CliIo } from '@switchboard/common/cli';
import { PkiError } from '@switchboard/pki';
import { isRelayError } from '../errors.js';
import { explainToolDecision } from '../policy/explain.js';
import { loadPolicyFile } from '../wiring/policy-file.js';


/** PolicyCheckOptions are the flags of `switchboard policy check`. */
export interface PolicyCheckOptions {
  /** explain is `[agentId, server, tool]`: say which rule decides and why. */
  explain?: string[];
  json?: boolean;
}

/**
 * runPolicyCheck validates a policy file (line-precise errors) and, with `explain`, walks through
 * one decision. Resolves to the exit code: 0 valid (whatever the explained decision), 2 invalid
 * file or usage, 1 when the file cannot be read.
 *
 * @example
 * await runPolicyCheck('policy.yaml', { explain: ['spiffe://example.org/agent/a', 'crm', 'get_order'] }, { stdout, stderr });
 */
export async function runPolicyCheck(file: string, opts: PolicyCheckOptions, io: CliIo): Promise<number> {
  if (opts.explain !== undefined && opts.explain.length !== 3) {
    io.stderr.write('RELAY_ERR_USAGE: --explain takes three values: <agent-id> <server> <tool>\n');
    return 2;
  }
  let snapshot;
  try {
    snapshot = await loadPolicyFile(file);
  } catch (err) {
    if (isRelayError(err)) {
      io.stderr.write(`${err.code}: ${err.message}\n`);
      return err.message.includes('cannot read') ? 1 : 2;
    }
    throw err;
  }
  const summary = {
    file,
    valid: true,
    trustDomain: snapshot.trustDomain.name,
    servers: snapshot.servers.size,
    zones: snapshot.zones.size,
    rules: snapshot.rules.length,
    revoked: snapshot.revoked.ids.length + snapshot.revoked.serials.size,
    sha256: snapshot.sourceHash,
    warnings: [...snapshot.warnings],
  };
  if (opts.explain === undefined) {
    if (opts.json) io.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    else {
      io.stdout.write(
        `policy: ${file}: valid — trust domain ${summary.trustDomain}, ${summary.servers} servers, ${summary.zones} zones, ${summary.rules} rules, ${summary.revoked} revocations\n`,
      );
      for (const w of summary.warnings) io.stdout.write(`warning: ${w}\n`);
    }
    return 0;
  }
  const [agent, server, tool] = opts.explain as [string, string, string];
  let e;
  try {
    e = explainToolDecision(snapshot, agent, server, tool);
  } catch (err) {
    if (err instanceof PkiError) {
      io.stderr.write(`RELAY_ERR_USAGE: --explain: ${agent} is not a SPIFFE ID (${err.code}: ${err.message})\n`);
      return 2;
    }
    throw err;
  }
  if (opts.json) {
    io.stdout.write(`${JSON.stringify({ ...summary, explain: e }, null, 2)}\n`);
  } else {
    io.stdout.write(`${e.agent} → ${server} → ${tool}\n`);
    for (const line of e.lines) io.stdout.write(`  ${line}\n`);
  }
  return 0;
}

/**
 * policyCommand builds `switchboard policy check <file> [--explain <agent-id> <server> <tool>]`.
 */
export function policyCommand(io: CliIo = process, setExit?: (code: number) => void): Command {
  const policy = new Command('policy').description('work with policy files');
  policy
    .command('check')
    .description('validate a policy file (line-precise errors, exit 2 when invalid); --explain says which rule decides a call')
    .argument('<file>', 'policy.yaml')
    .option('--explain <agent-server-tool...>', 'explain the decision for <agent-id> <server> <tool>')
    .option('--json', 'print JSON')
    .action(async (file: string, opts: PolicyCheckOptions) => {
      const code = await runPolicyCheck(file, opts, io);
      if (setExit) setExit(code);
      else process.exitCode = code;
    });
  return policy;
}
