import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyError } from '../../src/errors.js';
import { compilePolicy, type PolicySnapshot } from '../../src/policy/compile.js';
import { connectorMayServe, isConnector, mayUseServer, serverRequestAllowed, toolDecision } from '../../src/policy/decide.js';
import { PolicyScope } from '../../src/policy/scope.js';
import type { PolicyDocument, ServerRequestKind } from '../../src/policy/document.js';
import { parsePolicyText } from '../../src/policy/policy-text.js';
import { PolicyStore } from '../../src/policy/store.js';
import { PolicyFile, loadPolicyFile } from '../../src/wiring/policy-file.js';
import { silentLogger } from '@switchboard/common';
import { SpiffeId } from '@switchboard/pki';

const TD = 'spiffe://example.org';

const DOC: PolicyDocument = {
  trustDomain: 'example.org',
  servers: {
    crm: { connectors: [`${TD}/connector/crm`] },
    tickets: { connectors: [`${TD}/connector/tickets`, `${TD}/connector/tickets-2`] },
    wiki: { connectors: [`${TD}/connector/wiki`] },
  },
  rules: [
    {
      id: 'support-reads-crm',
      agents: [`${TD}/agent/support/*`],
      servers: ['crm'],
      tools: { allow: ['lookup_*', 'get_order'], deny: ['*delete*'] },
    },
    {
      id: 'admins',
      agents: [`${TD}/agent/admin/**`],
      servers: ['*'],
      tools: { allow: ['*'] },
      serverRequests: { sampling: true },
    },
    {
      id: 'no-deletes-anywhere',
      agents: [TD],
      servers: ['*'],
      tools: { deny: ['*delete*'] },
      serverRequests: { elicitation: false },
    },
    {
      id: 'bot-exact',
      agents: [`${TD}/agent/bot`],
      servers: ['tickets'],
      tools: { allow: ['create_ticket'] },
      serverRequests: { roots: true, elicitation: true },
    },
  ],
};

let policy: PolicySnapshot;
beforeAll(() => {
  policy = compilePolicy(DOC);
});

describe('toolDecision', () => {
  it.each<[string, string, string, boolean, string | undefined]>([
    // agent, server, tool → allow, deciding rule
    ['agent/support/alice', 'crm', 'lookup_customer', true, 'support-reads-crm'],
    ['agent/support/alice', 'crm', 'get_order', true, 'support-reads-crm'],
    ['agent/support/alice', 'crm', 'lookup_', true, 'support-reads-crm'],
    ['agent/support/alice', 'crm', 'delete_customer', false, 'support-reads-crm'],
    ['agent/support/alice', 'crm', 'lookup_and_delete', false, 'support-reads-crm'], // deny beats allow
    ['agent/support/alice', 'crm', 'update_order', false, undefined], // default deny
    ['agent/support/alice', 'crm', 'get_order ', false, undefined], // exact bytes
    ['agent/support/alice', 'crm', 'Get_order', false, undefined],
    ['agent/support/alice', 'crm', 'get_\u043erder', false, undefined], // Cyrillic o
    ['agent/support/alice', 'crm', 'get_order\u0000', false, undefined],
    ['agent/support/alice/laptop', 'crm', 'lookup_customer', false, undefined], // * is one segment
    ['agent/support', 'crm', 'lookup_customer', false, undefined],
    ['agent/support/alice', 'tickets', 'lookup_customer', false, undefined], // rule is for crm only
    ['agent/admin/a', 'wiki', 'edit_page', true, 'admins'],
    ['agent/admin/a/b/c', 'crm', 'get_order', true, 'admins'], // ** is deeper
    ['agent/admin', 'crm', 'get_order', false, undefined], // ** needs at least one segment
    ['agent/admin/a', 'crm', 'delete_all', false, 'no-deletes-anywhere'], // a deny in another rule wins
    ['agent/admin/a', 'nope', 'anything', false, undefined], // undeclared server
    ['agent/bot', 'tickets', 'create_ticket', true, 'bot-exact'],
    ['agent/bot', 'tickets', 'create_ticket2', false, undefined],
    ['agent/bot/x', 'tickets', 'create_ticket', false, undefined], // exact ID only
  ])('%s on %s calling %s → allow=%s (rule %s)', (agent, server, tool, allow, ruleId) => {
    const d = toolDecision(policy, `${TD}/${agent}`, server, tool);
    expect(d.allow).toBe(allow);
    expect(d.ruleId).toBe(ruleId);
    expect(d.reason.length).toBeGreaterThan(0);
  });
});

describe('mayUseServer', () => {
  it.each<[string, string, boolean, string | undefined]>([
    ['agent/support/alice', 'crm', true, 'support-reads-crm'],
    // no-deletes-anywhere matches every agent but only denies: it admits nobody.
    ['agent/support/alice', 'tickets', false, undefined],
    ['agent/support/alice', 'wiki', false, undefined],
    ['agent/admin/x', 'wiki', true, 'admins'],
    ['agent/admin/x', 'undeclared', false, undefined],
    ['agent/bot', 'tickets', true, 'bot-exact'],
    ['agent/bot', 'crm', false, undefined],
    ['connector/crm', 'crm', false, undefined], // a role comes from the policy, not the path
  ])('%s → %s: %s', (agent, server, allow, ruleId) => {
    const d = mayUseServer(policy, `${TD}/${agent}`, server);
    expect(d.allow).toBe(allow);
    expect(d.ruleId).toBe(ruleId);
  });
});

describe('serverRequestAllowed (default deny, explicit false wins)', () => {
  it.each<[string, string, ServerRequestKind, boolean, string | undefined]>([
    ['agent/admin/a', 'crm', 'sampling', true, 'admins'],
    ['agent/admin/a', 'crm', 'elicitation', false, 'no-deletes-anywhere'],
    ['agent/admin/a', 'crm', 'roots', false, undefined],
    ['agent/bot', 'tickets', 'roots', true, 'bot-exact'],
    ['agent/bot', 'tickets', 'elicitation', false, 'no-deletes-anywhere'],
    ['agent/bot', 'tickets', 'sampling', false, undefined],
    ['agent/support/alice', 'crm', 'sampling', false, undefined],
  ])('%s on %s: %s → %s', (agent, server, kind, allow, ruleId) => {
    const d = serverRequestAllowed(policy, `${TD}/${agent}`, server, kind);
    expect(d.allow).toBe(allow);
    expect(d.ruleId).toBe(ruleId);
  });
});

describe('connectorMayServe and isConnector', () => {
  it.each<[string, string, boolean]>([
    ['connector/crm', 'crm', true],
    ['connector/crm', 'tickets', false],
    ['connector/tickets-2', 'tickets', true],
    ['connector/crm', 'undeclared', false],
    ['connector/crm/extra', 'crm', false],
    ['agent/admin/a', 'crm', false],
  ])('%s serving %s → %s', (id, server, allow) => {
    expect(connectorMayServe(policy, `${TD}/${id}`, server).allow).toBe(allow);
  });

  it('knows every listed connector and nobody else', () => {
    expect(isConnector(policy, `${TD}/connector/wiki`)).toBe(true);
    expect(isConnector(policy, `${TD}/connector/other`)).toBe(false);
    expect(isConnector(policy, `${TD}/agent/admin/a`)).toBe(false);
  });
});

describe('PolicyScope', () => {
  it('gives the same decisions as the free functions, and caches them', () => {
    const scope = new PolicyScope(policy, { id: SpiffeId.parse(`${TD}/agent/support/alice`) }, 'crm');
    expect(scope.session).toEqual(mayUseServer(policy, `${TD}/agent/support/alice`, 'crm'));
    for (const tool of ['lookup_x', 'delete_x', 'get_order', 'other']) {
      expect(scope.tool(tool)).toEqual(toolDecision(policy, `${TD}/agent/support/alice`, 'crm', tool));
      expect(scope.tool(tool)).toBe(scope.tool(tool));
    }
    expect(scope.serverRequest('sampling').allow).toBe(false);
  });

  it('decides but does not cache very long names', () => {
    const scope = new PolicyScope(policy, { id: SpiffeId.parse(`${TD}/agent/support/alice`) }, 'crm');
    const long = `lookup_${'x'.repeat(10_000)}`;
    expect(scope.tool(long).allow).toBe(true);
    expect(scope.tool(long)).not.toBe(scope.tool(long));
  });
});

describe('compilePolicy refuses invalid documents, naming the key path', () => {
  const base = (): Record<string, unknown> => structuredClone(DOC) as unknown as Record<string, unknown>;
  const rule0 = (d: Record<string, unknown>): Record<string, unknown> => (d.rules as Record<string, unknown>[])[0] as Record<string, unknown>;

  it.each<[string, (d: Record<string, unknown>) => void, string, RegExp]>([
    ['unknown top-level key', (d) => (d.rulez = []), 'rulez', /unknown key/],
    ['unknown key in a rule', (d) => (rule0(d).tool = {}), 'rules[0].tool', /unknown key/],
    ['unknown key in tools', (d) => (rule0(d).tools = { alow: ['x'] }), 'rules[0].tools.alow', /unknown key/],
    ['unknown server request kind', (d) => (rule0(d).serverRequests = { tasks: true }), 'rules[0].serverRequests.tasks', /unknown key/],
    ['server request flag not boolean', (d) => (rule0(d).serverRequests = { sampling: 'yes' }), 'rules[0].serverRequests.sampling', /true or false/],
    ['tools.allow not a list', (d) => (rule0(d).tools = { allow: 'x' }), 'rules[0].tools.allow', /list of strings/],
    ['agent outside the trust domain', (d) => (rule0(d).agents = ['spiffe://other.org/agent/a']), 'rules[0].agents[0]', /outside trust domain/],
    ['invalid agent pattern', (d) => (rule0(d).agents = ['spiffe://example.org/agent/**x']), 'rules[0].agents[0]', /SPIFFE ID or pattern/],
    ['agent not a SPIFFE ID', (d) => (rule0(d).agents = ['support']), 'rules[0].agents[0]', /SPIFFE ID or pattern/],
    ['empty agents', (d) => (rule0(d).agents = []), 'rules[0].agents', /at least 1/],
    ['rule names an undeclared server', (d) => (rule0(d).servers = ['crm', 'ghost']), 'rules[0].servers[1]', /not declared/],
    ['duplicate rule id', (d) => ((d.rules as { id: string }[])[1]!.id = 'support-reads-crm'), 'rules[1].id', /used twice/],
    ['missing rule id', (d) => delete rule0(d).id, 'rules[0].id', /required/],
    ['invalid connector ID', (d) => (d.servers = { crm: { connectors: ['spiffe://example.org/a/../b'] } }), 'servers.crm.connectors[0]', /not a valid SPIFFE ID/],
    ['connector in another trust domain', (d) => (d.servers = { crm: { connectors: ['spiffe://x.org/c'] } }), 'servers.crm.connectors[0]', /outside trust domain/],
    ['server without connectors', (d) => (d.servers = { crm: { connectors: [] } }), 'servers.crm.connectors', /at least 1/],
    ['unknown key in a server', (d) => (d.servers = { crm: { connectors: [`${TD}/c`], zones: 'x' } as never }), 'servers.crm.zones', /unknown key/],
    ['undeclared zone', (d) => (d.servers = { crm: { connectors: [`${TD}/c`], zone: 'x' } }), 'servers.crm.zone', /zone "x" is not declared/],
    ['invalid server name', (d) => (d.servers = { 'bad/name': { connectors: [`${TD}/c`] } }), 'servers.bad/name', /server names/],
    ['uppercase trust domain', (d) => (d.trustDomain = 'Example.org'), 'trustDomain', /trust domain/],
    ['missing servers', (d) => delete d.servers, 'servers', /required/],
    ['rules not a list', (d) => (d.rules = {}), 'rules', /list/],
  ])('%s', (_label, mutate, path, rule) => {
    const d = base();
    mutate(d);
    let err: unknown;
    try {
      compilePolicy(d);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).code).toBe('RELAY_ERR_POLICY');
    expect((err as PolicyError).path).toBe(path);
    expect((err as PolicyError).message).toMatch(rule);
    expect((err as PolicyError).message).toMatch(/^policy: /);
  });

  it('accepts a document without rules (everything denied)', () => {
    const p = compilePolicy({ trustDomain: 'example.org', servers: {} });
    expect(mayUseServer(p, `${TD}/agent/a`, 'crm').allow).toBe(false);
  });
});

describe('policy files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relay-policy-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const GOOD = `trustDomain: example.org
servers:
  crm: { connectors: [spiffe://example.org/connector/crm] }
rules:
  - id: support-reads-crm
    agents: [spiffe://example.org/agent/support/*]
    servers: [crm]
    tools: { allow: [lookup_*, get_order], deny: ["*delete*"] }
`;

  it('parses the DESIGN.md example', () => {
    const p = parsePolicyText(GOOD);
    expect(toolDecision(p, `${TD}/agent/support/a`, 'crm', 'lookup_x').allow).toBe(true);
    expect(toolDecision(p, `${TD}/agent/support/a`, 'crm', 'lookup_delete').allow).toBe(false);
  });

  it('names file, line and key path of an unknown key', () => {
    const text = GOOD.replace('    servers: [crm]\n', '    servers: [crm]\n    tols: {}\n');
    expect(() => parsePolicyText(text, 'policy.yaml')).toThrow(/^policy: policy\.yaml:8:5: rules\[0\]\.tols: unknown key/);
  });

  it('names the line of an unknown key deep in a rule, with the key it was taken for', () => {
    const text = `${GOOD}    args:\n      lookup_*:\n        id: { enum: [a, b] }\n    redact:\n      results: [secrets]\n      argumnets: [secrets]\n`;
    expect(() => parsePolicyText(text, 'policy.yaml')).toThrow(
      'policy: policy.yaml:14:7: rules[0].redact.argumnets: unknown key (allowed here: results, arguments; did you mean "arguments"?)',
    );
  });

  it('names the line of a value of the wrong type', () => {
    const text = GOOD.replace('tools: { allow: [lookup_*, get_order]', 'tools: { allow: lookup_*');
    expect(() => parsePolicyText(text, 'policy.yaml')).toThrow('policy: policy.yaml:8:14: rules[0].tools.allow: must be a list of strings, not a string');
  });

  it('names the line of a YAML duplicate key', () => {
    const text = `${GOOD}servers: {}\n`;
    let err: PolicyError | undefined;
    try {
      parsePolicyText(text, 'policy.yaml');
    } catch (e) {
      err = e as PolicyError;
    }
    expect(err?.code).toBe('RELAY_ERR_POLICY');
    expect(err?.line).toBe(9);
    expect(err?.message).toMatch(/not valid YAML/);
  });

  it('PolicyFile.reload swaps in a valid file and keeps the old policy when the new one is invalid', async () => {
    const path = join(dir, 'policy.yaml');
    await writeFile(path, GOOD);
    const store = new PolicyStore(await loadPolicyFile(path));
    const file = new PolicyFile(path, store, silentLogger);
    const first = store.current;
    const seen: number[] = [];
    store.onSwap((next, prev) => seen.push(prev.generation, next.generation));

    await writeFile(path, GOOD.replace('get_order', 'get_invoice'));
    const ok = await file.reload();
    expect(ok.ok).toBe(true);
    expect(store.current).not.toBe(first);
    expect(toolDecision(store.current, `${TD}/agent/support/a`, 'crm', 'get_invoice').allow).toBe(true);
    expect(seen).toEqual([first.generation, store.current.generation]);

    const second = store.current;
    await writeFile(path, GOOD.replace('trustDomain', 'trustDomian'));
    const bad = await file.reload();
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error.code).toBe('RELAY_ERR_POLICY');
    expect(!bad.ok && bad.error.message).toMatch(/trustDomian: unknown key/);
    expect(store.current).toBe(second);
    expect(seen).toHaveLength(2);
  });

  it('loadPolicyFile reports a missing file as RELAY_ERR_POLICY', async () => {
    await expect(loadPolicyFile(join(dir, 'missing.yaml'))).rejects.toMatchObject({ code: 'RELAY_ERR_POLICY', message: /ENOENT/ });
  });

  it('scope is shared per agent and server under one snapshot, and rebuilt for a new snapshot', () => {
    const store = new PolicyStore(compilePolicy(DOC));
    const alice = SpiffeId.parse(`${TD}/agent/support/alice`);
    const a1 = store.scope({ id: alice }, 'crm');
    // The same agent (another object for the same ID) on the same server: the same scope.
    expect(store.scope({ id: SpiffeId.parse(`${TD}/agent/support/alice`) }, 'crm')).toBe(a1);
    expect(store.scope({ id: alice }, 'tickets')).not.toBe(a1);
    expect(store.scope({ id: SpiffeId.parse(`${TD}/agent/support/bob`) }, 'crm')).not.toBe(a1);
    expect(a1.snapshot).toBe(store.current);
    expect(a1.tool('get_order').allow).toBe(true);
    expect(a1.tool('delete_order').allow).toBe(false);
    const next = compilePolicy({ ...DOC, rules: DOC.rules.filter((r) => r.id !== 'support-reads-crm') });
    store.swap(next);
    const a2 = store.scope({ id: alice }, 'crm');
    expect(a2).not.toBe(a1);
    expect(a2.snapshot).toBe(next);
    expect(a2.session.allow).toBe(false);
    // The old scope still answers for the old snapshot.
    expect(a1.tool('get_order').allow).toBe(true);
  });

  it('scopes of one SPIFFE ID with different certificates are apart, so a revoked serial refuses only its own', () => {
    const serial = 'ABCDEF01';
    const store = new PolicyStore(compilePolicy({ ...DOC, revoked: { serials: [serial] } }));
    const alice = SpiffeId.parse(`${TD}/agent/support/alice`);
    const revoked = store.scope({ id: alice, certSerial: 'ab:cd:ef:01' }, 'crm');
    const renewed = store.scope({ id: alice, certSerial: '02' }, 'crm');
    expect(revoked).not.toBe(renewed);
    expect(revoked.session).toMatchObject({ allow: false, revoked: true, revokedBy: `serial:${serial}` });
    expect(revoked.tool('get_order')).toMatchObject({ allow: false, revoked: true });
    expect(renewed.session.allow).toBe(true);
    expect(store.identity({ id: alice, certSerial: 'ABCDEF01' }).revoked?.revokedBy).toBe(`serial:${serial}`);
    expect(store.identity({ id: alice }).revoked).toBeUndefined();
  });
});
