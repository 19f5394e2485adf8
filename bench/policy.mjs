// Policy figures: the per-message decision cost with 10 and with 1,000 rules, and what
// redaction costs per KiB of a tool result on the relay's own path (parse, redact, re-serialise).
//
// Decisions are measured three ways, all in one run:
// - "hot path": what each message of a live session costs — `PolicyScope.call('tool', name)`,
//   a map lookup once the name was decided (sessions keep their scope until the policy changes);
// - "uncached": `toolDecision(snapshot, agent, server, tool)` from scratch — the rule index finds
//   the candidate rules (per server, per exact ID / pattern prefix), then deny and allow globs are
//   matched; this is what a new session or a never-seen name costs;
// - "full scan": the same decision without the index (every rule's servers and agents tested), to
//   show what the index saves as unrelated rules pile up.
import { SpiffeId } from '@switchboard/pki';
import { RateLimiter } from '@switchboard/guard';
import { PolicyScope, checkArguments, compilePolicy, toolDecision } from '@switchboard/relay';
import { redactJsonValue, getProfile } from '@switchboard/guard';

const TD = 'spiffe://example.org';

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** ns per call of `fn`, median of `rounds` rounds of `iters` calls. */
function time(fn, iters, rounds = 7) {
  for (let i = 0; i < Math.min(iters, 500); i++) fn();
  const per = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) fn();
    per.push(Number(process.hrtime.bigint() - t0) / iters);
  }
  return median(per);
}

/**
 * policyOf builds a policy of `n` rules over 50 servers, the shapes an organisation writes: most
 * rules name exact workloads of a team, some a team pattern (`…/teamK/*`), some deeper patterns
 * (`…/teamK/**`), a few trust-wide deny rules. Five rules apply to the measured agent
 * (`…/agent/team3/a7`) on the measured server, whatever `n` is — the others are unrelated rules
 * piling up, which is what the index must make free.
 */
function policyOf(n) {
  const servers = {};
  for (let s = 0; s < 50; s++) servers[`srv${s}`] = { connectors: [`${TD}/connector/c${s % 5}`] };
  const rules = [
    { id: 'no-deletes', agents: [TD], servers: ['*'], tools: { deny: ['*delete*', 'drop_*'] } },
    { id: 'team3-all', agents: [`${TD}/agent/team3/**`], servers: ['srv7', 'srv8'], tools: { allow: ['list_*', 'search'] } },
    {
      id: 'team3-reads',
      agents: [`${TD}/agent/team3/*`],
      servers: ['srv7'],
      tools: { allow: ['get_order', 'read_*'], deny: ['*_admin'] },
      args: { 'read_*': { path: { glob: '/srv/data/**', required: true } } },
      rate: { calls: 1_000_000, per: '1s', concurrent: 1000 },
    },
    { id: 'a7-extra', agents: [`${TD}/agent/team3/a7`], servers: ['srv7'], tools: { allow: ['tool_a7'] } },
    { id: 'srv7-limit', agents: [TD], servers: ['srv7'], rate: { calls: 1_000_000, per: '1m' } },
  ];
  for (let i = rules.length; i < n; i++) {
    // Teams 10…49: never the measured agent's team.
    const team = 10 + (i % 40);
    const shape = Math.floor(i / 40) % 4;
    let agents;
    if (shape === 1) agents = [`${TD}/agent/team${team}/*`];
    else if (shape === 2) agents = [`${TD}/agent/team${team}/**`];
    else agents = [`${TD}/agent/team${team}/a${i % 13}`, `${TD}/agent/team${team}/b${i % 7}`];
    const rule = { id: `rule-${i}`, agents, servers: [`srv${i % 50}`, `srv${(i * 7) % 50}`] };
    rule.tools = { allow: ['get_*', `list_${i % 9}*`, 'search', `tool_${i}`], deny: ['*_admin'] };
    if (i % 25 === 3) rule.args = { 'read_*': { path: { glob: `/srv/team${team}/**` } } };
    if (i % 30 === 4) rule.rate = { calls: 1000, per: '1s' };
    rules.push(rule);
  }
  return { trustDomain: 'example.org', servers, rules };
}

function fullScan(snapshot, id, server, tool) {
  const rules = snapshot.rules.filter((r) => r.servers.match(server) !== undefined && r.agents.some((m) => m.matches(id)));
  for (const r of rules) if (r.toolsDeny.match(tool) !== undefined) return false;
  for (const r of rules) if (r.toolsAllow.match(tool) !== undefined) return true;
  return false;
}

function toolResult(orders, secrets) {
  const list = [];
  for (let i = 0; i < orders; i++) {
    list.push({
      id: `5f0c${(1000 + i).toString(16)}-8e2d-4b7a-9c1e-0a3f4e5d6c7b`,
      created: `2026-03-01T09:${String(10 + (i % 50)).padStart(2, '0')}:00.000Z`,
      customer: { name: `Customer ${i}`, email: `customer${i}@example.org`, phone: `+1 415 555 01${String(10 + (i % 90))}` },
      items: [{ sku: `SKU-${40000 + i}`, qty: 1 + (i % 3), price: 19.99 + i }],
      total: 45.23 + i * 3,
      notes: `Order ${1700000000000 + i * 1000}: leave at the front desk.`,
    });
  }
  if (secrets) {
    list[1].notes = 'deploy with AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE';
    list[Math.min(3, orders - 1)].notes = 'Card on file 4111 1111 1111 1111, exp 12/29.';
  }
  const text = JSON.stringify(list, null, 2);
  return { jsonrpc: '2.0', id: 7, result: { content: [{ type: 'text', text }], structuredContent: { orders: list } } };
}

/** relayRedact is what the relay does with a result when a redaction profile applies (session/guards.ts). */
function relayRedact(buf, profile) {
  const msg = JSON.parse(buf.toString('utf8'));
  const r = redactJsonValue(msg.result, profile);
  if (r.total === 0) return buf;
  msg.result = r.value;
  return JSON.stringify(msg);
}

export async function benchPolicy({ quick = false } = {}) {
  const iters = quick ? 20_000 : 200_000;
  const agent = SpiffeId.parse(`${TD}/agent/team3/a7`);
  const out = { decisions: {}, redaction: {} };
  for (const n of [10, 1000]) {
    const doc = policyOf(n);
    const t0 = process.hrtime.bigint();
    const snapshot = compilePolicy(doc);
    const compileMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const scope = new PolicyScope(snapshot, { id: agent }, 'srv7');
    if (!scope.tool('get_order').allow || scope.tool('delete_order').allow) throw new Error('bench policy decides wrongly');
    const names = ['get_order', 'read_file', 'delete_order', 'list_things'];
    let k = 0;
    const limiter = new RateLimiter();
    const args = { path: '/srv/data/reports/q1.csv' };
    out.decisions[n] = {
      rules: snapshot.rules.length,
      matching: scope.rules.length,
      compileMs,
      hotNs: time(() => scope.call('tool', names[k++ & 3]), iters),
      uncachedNs: time(() => toolDecision(snapshot, agent, 'srv7', names[k++ & 3]), iters / 4),
      fullScanNs: time(() => fullScan(snapshot, agent, 'srv7', names[k++ & 3]), quick ? 500 : 5000),
      scopeNs: time(() => new PolicyScope(snapshot, { id: agent }, 'srv7'), iters / 10),
      // A tools/call on the hot path with everything on: decision, argument glob, rate limit.
      callNs: time(() => {
        const g = scope.call('tool', 'read_file');
        if (checkArguments(g, args) !== undefined) throw new Error('refused');
        const d = limiter.acquire(agent.toString(), g.rates[0]);
        if (d.ok) d.release();
      }, iters / 4),
    };
  }

  const secrets = getProfile('secrets');
  for (const [label, orders, withSecrets] of [
    ['small', 2, false],
    ['medium', 40, false],
    ['medium, 2 secrets', 40, true],
    ['large', 640, false],
  ]) {
    const buf = Buffer.from(JSON.stringify(toolResult(orders, withSecrets)));
    const kib = buf.length / 1024;
    const n = Math.max(20, Math.round((quick ? 20_000 : 200_000) / (kib * 50)));
    out.redaction[label] = {
      kib,
      redactNsPerKib: time(() => relayRedact(buf, secrets), n) / kib,
      parseNsPerKib: time(() => JSON.parse(buf.toString('utf8')), n) / kib,
    };
  }
  return out;
}

export function printPolicy(r) {
  const us = (ns) => `${(ns / 1000).toFixed(2)} µs`;
  console.log('## Policy');
  console.log('| rules | matching | hot path (cached) | uncached decision | full scan (no index) | session scope | tools/call, all guards | compile |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [n, d] of Object.entries(r.decisions)) {
    console.log(
      `| ${n} | ${d.matching} | ${us(d.hotNs)} | ${us(d.uncachedNs)} | ${us(d.fullScanNs)} | ${us(d.scopeNs)} | ${us(d.callNs)} | ${d.compileMs.toFixed(1)} ms |`,
    );
  }
  console.log('');
  console.log('| result | redaction on the relay path (parse + redact + re-serialise) | JSON.parse alone |');
  console.log('|---|---|---|');
  for (const [label, x] of Object.entries(r.redaction)) {
    console.log(`| ${label} (${x.kib.toFixed(1)} KiB) | ${us(x.redactNsPerKib)} /KiB | ${us(x.parseNsPerKib)} /KiB |`);
  }
  const big = r.decisions[1000];
  const worst = Math.max(big.hotNs, big.uncachedNs);
  console.log(`Goal: decision ≤ 5 µs at 1,000 rules — ${worst <= 5000 ? 'met' : 'NOT met'} (hot path ${us(big.hotNs)}, uncached ${us(big.uncachedNs)})`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printPolicy(await benchPolicy({ quick: process.argv.includes('--quick') }));
}
