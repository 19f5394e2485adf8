// `switchboard demo`, the README's first command, run as a user runs it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI } from './world.js';

const run = promisify(execFile);

describe('switchboard demo', () => {
  it('shows the filtered list, an allowed read, a refused write that creates nothing, and the audit trail; exits 0', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'demo'], { timeout: 90_000 });
    // The read tools of server-filesystem, and none of its write tools.
    const list = stdout.split('\n').find((l) => l.includes('tools/list')) ?? '';
    expect(list).toContain('read_text_file');
    expect(list).toContain('list_directory');
    for (const writeTool of ['write_file', 'edit_file', 'create_directory', 'move_file']) expect(list).not.toContain(writeTool);
    expect(stdout).toMatch(/read_text_file .*allowed: "Quarterly numbers/);
    expect(stdout).toMatch(/write_file .*refused by the relay: MCP error -32602: Unknown tool: write_file/);
    expect(stdout).toContain('pwned.txt exists afterwards? no');
    // Contained (CI has bubblewrap): a fetch from an undeclared host fails inside the server, and
    // the connector's refusal of its DNS lookup is in the trail.
    expect(stdout).toContain('Each runs in a bubblewrap sandbox: no network');
    expect(stdout).toMatch(/gzip-file-as-resource https:\/\/exfil\.attacker\.example\/… → failed inside the server: fetch failed/);
    expect(stdout).toMatch(/egress\.denied +agent\/support → everything tried exfil\.attacker\.example \(DNS lookup\) → refused by the connector/);
    // The audit trail records both decisions.
    expect(stdout).toMatch(/read_text_file[^\n]*allow/);
    expect(stdout).toMatch(/write_file[^\n]*deny/);
    // …compactly (one line per record, no raw JSON), and the trail verifies with the checkpoint key.
    expect(stdout).not.toMatch(/"type":/);
    expect(stdout).toMatch(/#\d+ +checkpoint +Ed25519 signature/);
    expect(stdout).toMatch(/OK: \d+ records, seq 1–\d+, \d+ checkpoints \(signatures verified\)/);
    expect(stdout).toContain('Done:');
  }, 120_000);
});
