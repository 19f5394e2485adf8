// Guard figures: redaction cost per KiB of a typical tool result, with and without
// secrets in it, next to the cost of parsing and serialising the same result in the same run
// (the relay parses every message anyway); argument-constraint checks per call; pinning a
// 20-tool list; one rate-limiter acquire/release.
import { generateKeyPairSync } from 'node:crypto';
import {
  PinStore,
  RateLimiter,
  compileArgConstraints,
  compileRateRule,
  getProfile,
  redactJsonValue,
  redactText,
} from '@switchboard/guard';

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** ns per call of `fn`, median of `rounds` rounds of `iters` calls. */
function time(fn, iters, rounds = 7) {
  for (let i = 0; i < Math.min(iters, 200); i++) fn(); // warm up
  const per = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) fn();
    per.push(Number(process.hrtime.bigint() - t0) / iters);
  }
  return median(per);
}

/** A CallToolResult as a CRM server returns it: pretty JSON text of a dozen orders, plus structuredContent. */
function toolResult(withSecrets) {
  const orders = [];
  for (let i = 0; i < 12; i++) {
    orders.push({
      id: `5f0c${(1000 + i).toString(16)}-8e2d-4b7a-9c1e-0a${String(i).padStart(2, '0')}3f4e5d6c7b`,
      created: `2026-03-${String(1 + i).padStart(2, '0')}T09:${String(10 + i).padStart(2, '0')}:00.000Z`,
      customer: { name: `Customer ${i}`, email: `customer${i}@example.org`, phone: `+1 415 555 01${String(10 + i)}` },
      shipTo: `${100 + i} Market Street, San Francisco, CA 94103`,
      items: [
        { sku: `SKU-${40000 + i}`, qty: 1 + (i % 3), price: 19.99 + i },
        { sku: `SKU-${50000 + i}`, qty: 1, price: 5.25 },
      ],
      total: 45.23 + i * 3,
      status: i % 4 === 0 ? 'shipped' : 'processing',
      notes: `Order ${1700000000000 + i * 1000}: leave at the front desk, ring twice.`,
    });
  }
  if (withSecrets) {
    orders[2].notes = 'Card on file 4111 1111 1111 1111, exp 12/29.';
    orders[7].notes = 'deploy with AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE and the usual secret';
    orders[9].notes = 'session eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
  }
  const text = JSON.stringify(orders, null, 2);
  return { content: [{ type: 'text', text }], structuredContent: { orders }, isError: false };
}

export async function benchGuard({ quick = false } = {}) {
  const iters = quick ? 200 : 2000;
  const secrets = getProfile('secrets');
  const out = { redaction: {}, args: {}, pinning: {}, rate: {} };

  for (const [label, withSecrets] of [['clean', false], ['secrets', true]]) {
    const result = toolResult(withSecrets);
    const json = JSON.stringify(result);
    const kib = Buffer.byteLength(json) / 1024;
    const text = result.content[0].text;
    const textKib = Buffer.byteLength(text) / 1024;
    const parsed = JSON.parse(json);
    const found = redactJsonValue(parsed, secrets).total;
    out.redaction[label] = {
      kib,
      found,
      textNsPerKib: time(() => redactText(text, secrets), iters) / textKib,
      jsonNsPerKib: time(() => redactJsonValue(parsed, secrets), iters) / kib,
      parseNsPerKib: time(() => JSON.parse(json), iters) / kib,
      roundTripNsPerKib: time(() => JSON.stringify(JSON.parse(json)), iters) / kib,
    };
  }
  // One private key in a result: the worst common case (a long match).
  const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
  const keyText = `cat ~/.config/app/key.pem\n${pem}\n`;
  out.redaction.pem = { nsPerKib: time(() => redactText(keyText, secrets), iters * 5) / (Buffer.byteLength(keyText) / 1024) };

  const fsArgs = compileArgConstraints({ path: { glob: ['/srv/data/**', '/srv/shared/*.md'], required: true, max: 4096 } });
  const ticket = compileArgConstraints({ ticket: { regex: '^[A-Z]{2,5}-[0-9]{1,6}$' } });
  const mode = compileArgConstraints({ mode: { enum: ['read', 'list', 'stat'] } });
  const all = compileArgConstraints({
    path: { glob: '/srv/data/**', required: true },
    ticket: { regex: '^[A-Z]{2,5}-[0-9]{1,6}$' },
    mode: { enum: ['read', 'list', 'stat'] },
    limit: { max: 1000 },
  });
  const okPath = { path: '/srv/data/reports/2026/q1/summary.csv' };
  const badPath = { path: '/srv/data/reports/../../../etc/passwd' };
  const n = iters * 50;
  out.args = {
    globAllowedNs: time(() => fsArgs.check(okPath), n),
    globRefusedNs: time(() => fsArgs.check(badPath), n),
    regexNs: time(() => ticket.check({ ticket: 'OPS-4211' }), n),
    enumNs: time(() => mode.check({ mode: 'list' }), n),
    allFourNs: time(() => all.check({ path: okPath.path, ticket: 'OPS-4211', mode: 'read', limit: 50 }), n),
  };

  const tools = [];
  for (let i = 0; i < 20; i++) {
    tools.push({
      name: `tool_${i}`,
      description: `Does thing number ${i} with the customer record; returns JSON.`,
      inputSchema: { type: 'object', properties: { id: { type: 'string' }, expand: { type: 'boolean' }, limit: { type: 'integer', maximum: 100 } }, required: ['id'] },
      annotations: { readOnlyHint: i % 2 === 0 },
    });
  }
  const pins = PinStore.memory();
  pins.evaluateToolList('crm', tools, 'tofu');
  out.pinning = {
    listNs: time(() => pins.evaluateToolList('crm', tools, 'tofu'), quick ? 100 : 1000),
    isCallableNs: time(() => pins.isCallable('crm', 'tool_7'), n),
  };

  const limiter = new RateLimiter();
  const rule = compileRateRule('bench', { calls: 1_000_000, per: '1s', concurrent: 100 });
  out.rate = {
    acquireReleaseNs: time(() => {
      const d = limiter.acquire('spiffe://example.org/agent/bench', rule);
      if (d.ok) d.release();
    }, n),
  };
  return out;
}

export function printGuard(r) {
  const us = (ns) => `${(ns / 1000).toFixed(2)} µs`;
  console.log('## Guard (redaction, argument constraints, pinning, rate limits)');
  for (const [label, x] of Object.entries(r.redaction)) {
    if (label === 'pem') continue;
    console.log(
      `redaction, ${label === 'clean' ? 'no secrets  ' : `${x.found} secrets   `} ${us(x.jsonNsPerKib).padStart(10)} /KiB walking the parsed result, ${us(x.textNsPerKib)} /KiB on its text` +
        ` (${x.kib.toFixed(1)} KiB result; JSON.parse ${us(x.parseNsPerKib)} /KiB, parse+stringify ${us(x.roundTripNsPerKib)} /KiB, same run)`,
    );
  }
  console.log(`redaction, one PEM key  ${us(r.redaction.pem.nsPerKib).padStart(10)} /KiB`);
  const c = r.redaction.clean;
  console.log(`  → on a clean result redaction costs ${((c.jsonNsPerKib / c.parseNsPerKib) * 100).toFixed(0)} % of the JSON.parse the relay does anyway`);
  console.log(`args: glob allowed       ${us(r.args.globAllowedNs).padStart(10)}   refused (..) ${us(r.args.globRefusedNs)}`);
  console.log(`args: regex ${us(r.args.regexNs).padStart(10)}   enum ${us(r.args.enumNs)}   all four on one call ${us(r.args.allFourNs)}`);
  console.log(`pinning: 20-tool list    ${us(r.pinning.listNs).padStart(10)}   isCallable ${us(r.pinning.isCallableNs)}`);
  console.log(`rate: acquire + release  ${us(r.rate.acquireReleaseNs).padStart(10)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printGuard(await benchGuard({ quick: process.argv.includes('--quick') }));
}
