// The chaos suite (issue 12): real processes throughout — two `switchboard relay` processes, two
// `switchboard connector` processes serving the same server (the fixture: echo, crash, whoami),
// an SDK agent and `switchboard agent stdio` under the MCP SDK Client, calls running throughout.
// Each scenario is bounded in time; after each, every call an agent saw succeed has its `request`
// record (found by its argsDigest) in a relay's trail, every other call got a defined error, and
// `switchboard audit verify` passes on every relay's trail. Counts are printed at the end.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { digestArguments } from '@switchboard/audit';
import { connect } from '@switchboard/agent-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, CRASH, TD, startLoggedProcess, startRelayPair, type LoggedProcess, type RelayPair } from './world.js';

const C1 = `spiffe://${TD}/connector/one`;
const C2 = `spiffe://${TD}/connector/two`;
const BOT = `spiffe://${TD}/agent/bot`;
const DESKTOP = `spiffe://${TD}/agent/desktop`;
const POLICY = `trustDomain: ${TD}
servers:
  fixture: { connectors: [${C1}, ${C2}] }
rules:
  - id: agents
    agents: [${BOT}, ${DESKTOP}]
    servers: [fixture]
    tools: { allow: [echo, crash, whoami] }
`;

/** Outcome of one call: `ok`, or the JSON-RPC / close code it failed with. */
type Outcome = 'ok' | number | string;
interface Caller {
  callTool(params: { name: string; arguments?: Record<string, unknown> }, schema?: undefined, options?: { timeout?: number }): Promise<unknown>;
}

const DEFINED = new Set<Outcome>([-32052, -32051, -32050]);
const counts = { ok: 0, lost: 0, backendGone: 0, auditRefused: 0, sessionsReopened: 0, scenarios: 0, recordsChecked: 0 };

let relays: RelayPair;
let tmpfs: string | undefined;
const connectors = new Map<string, LoggedProcess>();
const confs = new Map<string, string>();
const succeeded: string[] = [];
let seq = 0;

async function startConnector(name: 'one' | 'two'): Promise<LoggedProcess> {
  const p = startLoggedProcess(['connector', '--config', confs.get(name) as string]);
  connectors.set(name, p);
  await p.logged('link up', 2, 20_000);
  return p;
}

/** call makes one echo call and files its outcome; a success is remembered for the trail check. */
async function call(c: Caller): Promise<Outcome> {
  const message = `c${seq++}`;
  try {
    const r = (await c.callTool({ name: 'echo', arguments: { message } }, undefined, { timeout: 20_000 })) as { content: { text: string }[] };
    if (r.content[0]?.text !== `echo: ${message}`) return `wrong answer ${JSON.stringify(r).slice(0, 100)}`;
    succeeded.push(message);
    counts.ok++;
    return 'ok';
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === -32052) counts.lost++;
    else if (code === -32051) counts.backendGone++;
    else if (code === -32050) counts.auditRefused++;
    return typeof code === 'number' ? code : String(err).slice(0, 200);
  }
}

/** run keeps two calls in flight per caller until `enough` succeeded, starting `during` after a few; every outcome must be defined. */
async function run(callers: Caller[], enough: number, during?: () => Promise<unknown>, accept: (o: Outcome) => boolean = (o) => DEFINED.has(o)): Promise<Outcome[]> {
  const seen: Outcome[] = [];
  let side: Promise<unknown> | undefined;
  let ok = 0;
  const deadline = Date.now() + 40_000;
  while (ok < enough && Date.now() < deadline) {
    const round = await Promise.all(callers.flatMap((c) => [call(c), call(c)]));
    for (const o of round) {
      seen.push(o);
      if (o === 'ok') ok++;
      else expect(accept(o), `an undefined outcome: ${String(o)}`).toBe(true);
    }
    if (side === undefined && during !== undefined && ok >= 4) side = during();
  }
  await side;
  expect(ok).toBeGreaterThanOrEqual(enough);
  return seen;
}

/** whoami is the backend serving `c`: its pid, its parent (the connector), the echo calls it answered. */
async function whoami(c: Caller): Promise<{ pid: number; ppid: number; echoed: number }> {
  const r = (await c.callTool({ name: 'whoami', arguments: {} }, undefined, { timeout: 20_000 })) as { content: { text: string }[] };
  const m = /^pid (\d+) ppid (\d+) asked \d+ echoed (\d+)$/.exec(r.content[0]?.text ?? '');
  if (!m) throw new Error(`whoami answered ${JSON.stringify(r)}`);
  return { pid: Number(m[1]), ppid: Number(m[2]), echoed: Number(m[3]) };
}

/** linkUps counts each connector's `link up` lines now, to wait for the next ones. */
function linkUps(): Map<LoggedProcess, number> {
  return new Map([...connectors.values()].map((p) => [p, p.lines.filter((l) => l.msg === 'link up').length]));
}

async function relinked(before: Map<LoggedProcess, number>): Promise<void> {
  for (const [p, n] of before) await p.logged('link up', n + 1, 20_000);
}

/** checkTrails: every succeeded call has its request record in a relay's trail; both trails verify. */
async function checkTrails(): Promise<void> {
  const recorded = new Set<string>();
  for (const name of ['a', 'b'] as const) {
    for (const r of await relays.trail(name)) if (r.type === 'request' && r.decision === 'allow' && typeof r.argsDigest === 'string') recorded.add(r.argsDigest);
    // A relay killed (or still running) has an unsigned tail: accepted knowingly, the rest is checked.
    expect(await relays.verify(name, '--allow-unsigned'), `audit verify ${name}`).toBe(0);
  }
  const missing = succeeded.filter((m) => !recorded.has(digestArguments({ message: m })));
  expect(missing).toEqual([]);
  counts.recordsChecked = succeeded.length;
  counts.scenarios++;
}

let bot: Awaited<ReturnType<typeof connect>>;
let desktop: Client;

beforeAll(async () => {
  // The trail of relay a on a small tmpfs (root only), for the full-disk scenario.
  if (process.getuid?.() === 0) {
    tmpfs = `/tmp/sb-chaos-tmpfs-${process.pid}`;
    await mkdir(tmpfs, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', tmpfs]);
    } catch {
      await rm(tmpfs, { recursive: true, force: true });
      tmpfs = undefined;
    }
  }
  relays = await startRelayPair(POLICY, { extra: 'limits: { drainTimeoutMs: 1500 }\n', ...(tmpfs ? { auditDir: { a: tmpfs } } : {}) });
  for (const [name, id] of [['one', C1], ['two', C2]] as const) {
    await relays.ca.writeIdentity(join(relays.dir, `c-${name}`), await relays.ca.issue(id));
    const conf = join(relays.dir, `connector-${name}.yaml`);
    // Uncontained: the scenarios tell backends (and which connector spawned them) apart by host PIDs.
    await writeFile(conf, `relays: [${relays.urls.a}, ${relays.urls.b}]\nidentity: ./c-${name}\nservers:\n  fixture: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(CRASH)}], egress: any, filesystem: any }\n`);
    confs.set(name, conf);
    await startConnector(name);
  }
  bot = await connect({ relay: [relays.urls.a, relays.urls.b], server: 'fixture', identity: { svid: await relays.ca.issue(BOT), bundle: relays.ca.bundle } });
  const ids = join(relays.dir, 'desktop');
  await relays.ca.writeIdentity(ids, await relays.ca.issue(DESKTOP));
  desktop = new Client({ name: 'desktop', version: '1.0.0' });
  await desktop.connect(
    new StdioClientTransport({ command: process.execPath, args: [CLI, 'agent', 'stdio', '--relay', relays.urls.a, '--relay', relays.urls.b, '--server', 'fixture', '--identity', ids, '--no-renew'], stderr: 'pipe' }),
  );
}, 90_000);

afterAll(async () => {
  await desktop?.close().catch(() => undefined);
  await bot?.close().catch(() => undefined);
  for (const p of connectors.values()) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
  await relays?.close();
  if (tmpfs !== undefined) {
    try {
      execFileSync('umount', [tmpfs]);
    } catch {
      // already gone
    }
    await rm(tmpfs, { recursive: true, force: true });
  }
  console.log(
    `chaos: ${counts.scenarios} scenarios; ${counts.ok} calls answered, ${counts.lost} lost at a kill (-32052), ${counts.backendGone} ended with their backend (-32051), ` +
      `${counts.auditRefused} refused while the disk was full (-32050), ${counts.sessionsReopened} sessions reopened; ${counts.recordsChecked} answered calls found in the trails`,
  );
});

describe('chaos: real relays, connectors, servers and agents', () => {
  it('kill -9 a relay, restart it, kill -9 the other: both agents keep their backend sessions', async () => {
    const pids = async () => ({ bot: (await whoami(bot)).pid, desktop: (await whoami(desktop)).pid });
    const before = await pids();
    await run([bot, desktop], 30, () => relays.kill('a'));
    let ups = linkUps();
    await relays.start('a');
    await relinked(ups);
    await run([bot, desktop], 30, () => relays.kill('b'));
    ups = linkUps();
    await relays.start('b');
    await relinked(ups);
    // Resumed, not reopened: the same backend processes.
    expect(await pids()).toEqual(before);
    await checkTrails();
  }, 120_000);

  it('kill -9 a connector: its sessions end with a defined code, new sessions go to the other connector', async () => {
    const servedBy = await whoami(bot);
    const entries = [...connectors.entries()];
    const victim = entries.find(([, p]) => p.child.pid === servedBy.ppid);
    const other = entries.find(([, p]) => p.child.pid !== servedBy.ppid);
    if (victim === undefined || other === undefined) throw new Error('the bot session is on neither connector');
    const closed = new Promise<Error | undefined>((resolve) => {
      let err: Error | undefined;
      bot.onerror = (e) => (err = e);
      bot.onclose = () => resolve(err);
    });
    victim[1].child.kill('SIGKILL');
    await victim[1].exited;
    // The SDK session was on the dead connector: it cannot be resumed anywhere, and ends with 4509.
    const err = await Promise.race([closed, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the bot session did not end')), 20_000))]);
    expect((err as { closeCode?: number } | undefined)?.closeCode).toBe(4509);
    bot = await connect({ relay: [relays.urls.a, relays.urls.b], server: 'fixture', identity: { svid: await relays.ca.issue(BOT), bundle: relays.ca.bundle } });
    // The bridge carries on by itself: resumed if its session was on the other connector, else reopened there.
    await run([bot, desktop], 20);
    expect((await whoami(bot)).ppid).toBe(other[1].child.pid);
    expect((await whoami(desktop)).ppid).toBe(other[1].child.pid);
    await startConnector(victim[0] as 'one' | 'two');
    await checkTrails();
  }, 120_000);

  it('a backend crash mid-call: the calls get -32051, the session closes cleanly, the next session has a fresh server', async () => {
    const before = await whoami(bot);
    const inFlight = [call(bot), call(bot), call(bot)];
    const crash = bot.callTool({ name: 'crash', arguments: {} }, undefined, { timeout: 20_000 }).then(
      () => 'answered',
      (e: { code?: number }) => e.code,
    );
    expect(await crash).toBe(-32051);
    for (const o of await Promise.all(inFlight)) expect(['ok', -32051]).toContain(o);
    bot = await connect({ relay: [relays.urls.a, relays.urls.b], server: 'fixture', identity: { svid: await relays.ca.issue(BOT), bundle: relays.ca.bundle } });
    const after = await whoami(bot);
    expect(after.pid).not.toBe(before.pid);
    // The bridge's session: its backend crashes too, and the bridge reopens a fresh one by itself.
    const d0 = await whoami(desktop);
    expect(await desktop.callTool({ name: 'crash', arguments: {} }, undefined, { timeout: 20_000 }).then(() => 'answered', (e: { code?: number }) => e.code)).toBe(-32051);
    // A call sent before the bridge saw the session end may get -32052; then the bridge has reopened.
    await run([desktop], 3);
    const d1 = await whoami(desktop);
    expect(d1.pid).not.toBe(d0.pid);
    counts.sessionsReopened++;
    await run([bot, desktop], 10);
    await checkTrails();
  }, 120_000);

  it('SIGTERM twice during a drain: still a drain, still the final checkpoint; sessions move to the other relay', async () => {
    // connect() takes the first relay that accepts: the sessions are on relay a.
    const before = { bot: (await whoami(bot)).pid, desktop: (await whoami(desktop)).pid };
    const a = relays.process('a');
    await run([bot, desktop], 10, async () => {
      a.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 100));
      a.child.kill('SIGTERM');
      expect(await a.exited).toBe(0);
      relays.forget('a');
    });
    // A clean stop signs the end of the trail: it verifies without --allow-unsigned.
    expect(await relays.verify('a')).toBe(0);
    const trail = await relays.trail('a');
    expect(trail.at(-1)?.type).toBe('checkpoint');
    expect(trail.filter((r) => r.type === 'session.close' && r.code === 4509).length).toBeGreaterThanOrEqual(2);
    // The drain ended the sessions with 4509; both resumed through relay b with the same backends.
    expect({ bot: (await whoami(bot)).pid, desktop: (await whoami(desktop)).pid }).toEqual(before);
    const ups = linkUps();
    await relays.start('a');
    await relinked(ups);
    await checkTrails();
  }, 120_000);

  it.skipIf(process.getuid?.() !== 0)('a full disk under audit.durability strict: calls refused with -32050, nothing forwarded unrecorded, recovery when space returns', async () => {
    expect(tmpfs).toBeDefined();
    const onA = await connect({ relay: relays.urls.a, server: 'fixture', identity: { svid: await relays.ca.issue(BOT), bundle: relays.ca.bundle } });
    const echoed0 = (await whoami(onA)).echoed;
    // Fill the file system the trail lives on.
    const filler = join(tmpfs as string, 'filler');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k', 'count=10000'], { stdio: 'ignore' });
    } catch {
      // dd stops at ENOSPC: the disk is full.
    }
    // The trail's last page may still take a few records; then its next write fails with ENOSPC.
    let answered = 0;
    let first: Outcome = 'ok';
    for (let i = 0; i < 500 && first === 'ok'; i++) {
      first = await call(onA);
      if (first === 'ok') answered++;
    }
    expect(first).toBe(-32050);
    const refused: Outcome[] = [];
    for (let i = 0; i < 5; i++) refused.push(await call(onA));
    expect(refused).toEqual([-32050, -32050, -32050, -32050, -32050]);
    // Space returns: the trail reopens by itself and calls are recorded and answered again.
    await rm(filler);
    let back: Outcome = -32050;
    for (let i = 0; i < 50 && back !== 'ok'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      back = await call(onA);
      if (back !== 'ok') expect(back).toBe(-32050);
    }
    expect(back).toBe('ok');
    // Nothing refused reached the server: it answered the calls that were recorded, no other.
    expect((await whoami(onA)).echoed).toBe(echoed0 + answered + 1);
    await onA.close();
    await checkTrails();
  }, 120_000);
});
