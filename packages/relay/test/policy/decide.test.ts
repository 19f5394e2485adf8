// The decision function over the full policy file — tools, resources, prompts, argument
// constraints, zones, revocation, rate and redaction coverage — asserting the deciding rule.
import { SpiffeId } from '@switchboard/pki';
import { describe, expect, it } from 'vitest';
import { PolicyError } from '../../src/errors.js';
import { compilePolicy, type PolicySnapshot } from '../../src/policy/compile.js';
import { matchingRules, mayUseServer, promptDecision, resourceDecision, revocationDecision, serverRequestAllowed, toolDecision } from '../../src/policy/decide.js';
import { PolicyScope, checkArguments } from '../../src/policy/scope.js';
import type { PolicyDocument } from '../../src/policy/document.js';
import { explainToolDecision } from '../../src/policy/explain.js';
import { parsePolicyText } from '../../src/policy/policy-text.js';

const TD = 'spiffe://example.org';
const C = `${TD}/connector/main`;

const DOC: PolicyDocument = {
  trustDomain: 'example.org',
  zones: {
    'prod-data': { agents: [`${TD}/agent/ops/**`, `${TD}/agent/support/*`] },
    dev: { agents: [TD] },
  },
  servers: {
    crm: { connectors: [C], zone: 'prod-data', labels: { team: 'sales' } },
    files: { connectors: [C], zone: 'prod-data', pinning: { mode: 'strict' } },
    wiki: { connectors: [C] },
    sandbox: { connectors: [C], zone: 'dev' },
    vault: { connectors: [C], zone: 'prod-data' },
  },
  revoked: { ids: [`${TD}/agent/support/mallory`, `${TD}/agent/contractor/**`], serials: ['0a:1B:2c'] },
  rules: [
    {
      id: 'support-reads-crm',
      agents: [`${TD}/agent/support/*`],
      servers: ['crm'],
      tools: { allow: ['lookup_*', 'get_order'], deny: ['*delete*'] },
      resources: { allow: ['crm://customers/**'], deny: ['crm://customers/*/ssn'] },
      prompts: { allow: ['summarize_*'] },
      rate: { calls: 5, per: '1s', concurrent: 2 },
      redact: ['secrets'],
    },
    {
      id: 'support-files',
      agents: [`${TD}/agent/support/*`],
      servers: ['files'],
      tools: { allow: ['read_*', 'list_*'] },
      resources: { allow: ['file:///srv/data/**'] },
      args: {
        'read_*': { path: { glob: '/srv/data/**', required: true } },
        list_directory: { path: { glob: ['/srv/data', '/srv/data/**'] } },
      },
      redact: { results: ['credentials'], arguments: ['secrets'] },
    },
    {
      id: 'ops-everything',
      agents: [`${TD}/agent/ops/**`],
      servers: ['*'],
      tools: { allow: ['*'] },
      resources: { allow: ['**'] },
      prompts: { allow: ['*'] },
      serverRequests: { sampling: true, roots: true },
    },
    {
      id: 'no-deletes',
      agents: [TD],
      servers: ['*'],
      tools: { deny: ['*delete*', 'drop_*'] },
      prompts: { deny: ['*secret*'] },
      serverRequests: { elicitation: false },
    },
    {
      id: 'limit-everyone',
      agents: [TD],
      servers: ['wiki'],
      rate: { calls: 100, per: '1m' },
    },
    {
      id: 'wiki-readers',
      agents: [`${TD}/agent/reader`],
      servers: ['wiki', 'sandbox'],
      tools: { allow: ['read_page'] },
      args: { read_page: { title: { regex: '^[A-Za-z ]{1,64}$' }, lang: { enum: ['en', 'de'] }, depth: { max: 3 } } },
    },
    {
      // Grants vault to support agents … but vault's zone is prod-data, which support agents may
      // reach; the dev-only agent below may not.
      id: 'vault-readers',
      agents: [`${TD}/agent/support/*`, `${TD}/agent/dev/dora`],
      servers: ['vault'],
      tools: { allow: ['get_secret'] },
    },
  ],
};

const policy: PolicySnapshot = compilePolicy(DOC);
const id = (path: string): string => `${TD}/${path}`;

describe('tool decisions name the deciding rule', () => {
  it.each<[string, string, string, boolean, string | undefined, string?]>([
    // agent, server, tool → allow, rule, reason fragment
    ['agent/support/alice', 'crm', 'lookup_customer', true, 'support-reads-crm', 'allow "lookup_*"'],
    ['agent/support/alice', 'crm', 'get_order', true, 'support-reads-crm'],
    ['agent/support/alice', 'crm', 'lookup_deleted', false, 'support-reads-crm', 'deny "*delete*"'], // deny beats allow, same rule
    ['agent/support/alice', 'crm', 'update_order', false, undefined, 'no rule allows'], // default deny
    ['agent/support/alice', 'crm', 'Get_order', false, undefined], // exact bytes
    ['agent/support/alice/laptop', 'crm', 'lookup_customer', false, undefined], // * is one segment
    ['agent/ops/eu/oncall', 'wiki', 'edit_page', true, 'ops-everything'], // ** is deeper
    ['agent/ops/eu/oncall', 'crm', 'delete_customer', false, 'no-deletes'], // a later rule's deny beats an earlier allow
    ['agent/ops/eu/oncall', 'crm', 'drop_table', false, 'no-deletes'],
    ['agent/reader', 'wiki', 'read_page', true, 'wiki-readers'],
    ['agent/reader', 'wiki', 'edit_page', false, undefined],
    ['agent/reader', 'sandbox', 'read_page', true, 'wiki-readers'], // zone dev admits the whole trust domain
    ['agent/support/alice', 'vault', 'get_secret', true, 'vault-readers'],
    ['agent/support/alice', 'wiki', 'read_page', false, undefined], // limit-everyone grants nothing
  ])('%s on %s: %s → %s by %s', (agent, server, tool, allow, ruleId, reason) => {
    const d = toolDecision(policy, id(agent), server, tool);
    expect(d.allow).toBe(allow);
    expect(d.ruleId).toBe(ruleId);
    if (reason) expect(d.reason).toContain(reason);
  });
});

describe('zones: a rule never grants a server in a zone its agents may not reach', () => {
  it.each<[string, string, boolean, string | undefined, string | undefined]>([
    // agent, server → session allowed, rule, zone that refused
    ['agent/support/alice', 'crm', true, 'support-reads-crm', undefined],
    ['agent/dev/dora', 'vault', false, undefined, 'prod-data'], // vault-readers names her, the zone refuses
    ['agent/ops/x', 'sandbox', true, 'ops-everything', undefined],
    ['agent/reader', 'crm', false, undefined, 'prod-data'],
    ['agent/reader', 'wiki', true, 'wiki-readers', undefined], // wiki has no zone
  ])('%s → %s: %s', (agent, server, allow, ruleId, zone) => {
    const d = mayUseServer(policy, id(agent), server);
    expect(d.allow).toBe(allow);
    expect(d.ruleId).toBe(ruleId);
    expect(d.zone).toBe(zone);
    // Every call is refused by the zone too, naming it.
    if (zone) expect(toolDecision(policy, id(agent), server, 'get_secret')).toMatchObject({ allow: false, zone });
  });

  it('policy check warns about a rule its zone makes useless', () => {
    expect(policy.warnings).toEqual([
      expect.stringContaining('rules[6] (vault-readers): spiffe://example.org/agent/dev/dora may not reach zone "prod-data" of server "vault"'),
    ]);
  });
});

describe('revocation refuses everywhere', () => {
  it.each<[string, string | undefined, boolean, string]>([
    ['agent/support/mallory', undefined, true, 'revoked.ids[0]'],
    ['agent/contractor/acme/bot', undefined, true, 'revoked.ids[1]'],
    ['agent/support/alice', 'A1B2D', false, ''],
    ['agent/support/alice', '0A1B2C', true, 'serial A1B2C'], // serials compare without colons, case or leading zeros
    ['agent/support/alice', 'a:1b:2c', true, 'serial A1B2C'],
  ])('%s (serial %s) revoked: %s', (agent, serial, revoked, reason) => {
    const d = revocationDecision(policy, { id: SpiffeId.parse(id(agent)), certSerial: serial });
    expect(d !== undefined).toBe(revoked);
    if (revoked) expect(d).toMatchObject({ allow: false, revoked: true, reason: expect.stringContaining(reason) });
  });

  it('a revoked ID is refused the session and every tool, even where a rule grants it', () => {
    expect(mayUseServer(policy, id('agent/support/mallory'), 'crm')).toMatchObject({ allow: false, revoked: true });
    expect(toolDecision(policy, id('agent/support/mallory'), 'crm', 'lookup_customer')).toMatchObject({ allow: false, revoked: true });
    expect(new PolicyScope(policy, { id: SpiffeId.parse(id('agent/support/mallory')) }, 'crm').session.allow).toBe(false);
  });
});

describe('resources and prompts', () => {
  it.each<[string, string, boolean, string | undefined]>([
    ['crm://customers/42', 'crm', true, 'support-reads-crm'],
    ['crm://customers/42/orders/7', 'crm', true, 'support-reads-crm'],
    ['crm://customers/42/ssn', 'crm', false, 'support-reads-crm'], // deny beats allow
    ['crm://customers/42/./ssn', 'crm', false, 'support-reads-crm'], // normalised first
    ['crm://customers/42/orders/../ssn', 'crm', false, 'support-reads-crm'],
    ['crm://invoices/1', 'crm', false, undefined],
    ['file:///srv/data/report.csv', 'files', true, 'support-files'],
    ['file:///srv/data/../../etc/passwd', 'files', false, undefined],
    ['file:///srv/data/%2e%2e/%2e%2e/etc/passwd', 'files', false, undefined], // encoded dots refused outright
    ['file:///srv/data/..\\..\\etc', 'files', false, undefined],
    ['file:///srv/../../etc', 'files', false, undefined], // climbs above the root
  ])('resource %s on %s → %s by %s', (uri, server, allow, ruleId) => {
    const d = resourceDecision(policy, id('agent/support/alice'), server, uri);
    expect(d.allow).toBe(allow);
    expect(d.ruleId).toBe(ruleId);
  });

  it.each<[string, string, boolean, string | undefined]>([
    ['agent/support/alice', 'summarize_ticket', true, 'support-reads-crm'],
    ['agent/support/alice', 'draft_reply', false, undefined],
    ['agent/ops/a', 'summarize_secrets', false, 'no-deletes'],
    ['agent/ops/a', 'anything', true, 'ops-everything'],
  ])('prompt for %s: %s → %s by %s', (agent, name, allow, ruleId) => {
    const d = promptDecision(policy, id(agent), 'crm', name);
    expect(d.allow).toBe(allow);
    expect(d.ruleId).toBe(ruleId);
  });

  it('templates are listed when their text matches a resource glob', () => {
    const s = new PolicyScope(policy, { id: SpiffeId.parse(id('agent/support/alice')) }, 'files');
    expect(s.template('file:///srv/data/{path}').allow).toBe(true);
    expect(s.template('file:///{path}').allow).toBe(false);
  });
});

describe('server requests', () => {
  it.each<[string, 'sampling' | 'elicitation' | 'roots', boolean, string | undefined]>([
    ['agent/ops/a', 'sampling', true, 'ops-everything'],
    ['agent/ops/a', 'elicitation', false, 'no-deletes'],
    ['agent/support/alice', 'sampling', false, undefined],
  ])('%s %s → %s by %s', (agent, kind, allow, ruleId) => {
    const d = serverRequestAllowed(policy, id(agent), 'crm', kind);
    expect(d.allow).toBe(allow);
    expect(d.ruleId).toBe(ruleId);
  });
});

describe('argument constraints', () => {
  const scope = new PolicyScope(policy, { id: SpiffeId.parse(id('agent/support/alice')) }, 'files');
  const reader = new PolicyScope(policy, { id: SpiffeId.parse(id('agent/reader')) }, 'wiki');
  it.each<[PolicyScope, string, unknown, string | undefined, string?, string?]>([
    // scope, tool, arguments → refusing rule, argument, constraint
    [scope, 'read_file', { path: '/srv/data/a.txt' }, undefined],
    [scope, 'read_file', { path: '/srv/data/../../etc/passwd' }, 'support-files', 'path', 'glob'],
    [scope, 'read_file', { path: '/srv/data/../secrets/key' }, 'support-files', 'path', 'glob'],
    [scope, 'read_file', { path: '/srv/database/x' }, 'support-files', 'path', 'glob'], // prefix is not a folder
    [scope, 'read_file', { path: 'srv/data/a' }, 'support-files', 'path', 'glob'], // relative
    [scope, 'read_file', { path: '/srv/data/a\u0000/../../etc' }, 'support-files', 'path', 'glob'],
    [scope, 'read_file', {}, 'support-files', 'path', 'required'],
    [scope, 'read_text_file', { path: '/etc/shadow' }, 'support-files', 'path', 'glob'], // args key is a glob
    [scope, 'list_directory', { path: '/srv/data' }, undefined],
    [scope, 'list_directory', { path: '/srv' }, 'support-files', 'path', 'glob'],
    [scope, 'list_allowed_directories', {}, undefined], // no constraint applies
    [reader, 'read_page', { title: 'Home', lang: 'en', depth: 3 }, undefined],
    [reader, 'read_page', { title: 'Home; rm -rf /' }, 'wiki-readers', 'title', 'regex'],
    [reader, 'read_page', { lang: 'fr' }, 'wiki-readers', 'lang', 'enum'],
    [reader, 'read_page', { depth: 4 }, 'wiki-readers', 'depth', 'max'],
    [reader, 'read_page', 'not an object', 'wiki-readers', '', 'arguments'],
  ])('%#: %s %j', (s, tool, args, ruleId, argument, constraint) => {
    const g = s.call('tool', tool);
    expect(g.decision.allow).toBe(true);
    const r = checkArguments(g, args);
    if (ruleId === undefined) {
      expect(r).toBeUndefined();
      return;
    }
    expect(r).toMatchObject({ ruleId, argument, constraint });
  });
});

describe('rate limits and redaction apply to the calls a rule covers', () => {
  it('a rule with allow lists covers what it allows; one without covers every call on its servers', () => {
    const crm = new PolicyScope(policy, { id: SpiffeId.parse(id('agent/support/alice')) }, 'crm');
    expect(crm.call('tool', 'lookup_customer').rates.map((r) => r.id)).toEqual(['support-reads-crm']);
    expect(crm.call('tool', 'lookup_customer').redactResults).toEqual(['secrets']);
    expect(crm.call('resource', 'crm://customers/1').rates.map((r) => r.id)).toEqual(['support-reads-crm']);
    expect(crm.call('tool', 'update_order').rates).toEqual([]); // denied: nothing to limit
    const wiki = new PolicyScope(policy, { id: SpiffeId.parse(id('agent/reader')) }, 'wiki');
    expect(wiki.call('tool', 'read_page').rates.map((r) => r.id)).toEqual(['limit-everyone']);
    const files = new PolicyScope(policy, { id: SpiffeId.parse(id('agent/support/alice')) }, 'files');
    expect(files.call('tool', 'read_file')).toMatchObject({ redactResults: ['credentials'], redactArguments: ['secrets'] });
    expect(files.call('resource', 'file:///srv/data/x').redactArguments).toEqual([]);
  });
});

describe('the rule index finds exactly the rules a full scan finds', () => {
  it('on a policy of 1,000 rules with exact IDs, globs and trust-domain rules', () => {
    const servers: PolicyDocument['servers'] = {};
    for (let s = 0; s < 20; s++) servers[`srv${s}`] = { connectors: [C] };
    const rules: NonNullable<PolicyDocument['rules']> = [];
    for (let i = 0; i < 1000; i++) {
      const agents =
        i % 7 === 0 ? [TD] : i % 3 === 0 ? [`${TD}/agent/team${i % 13}/*`] : i % 5 === 0 ? [`${TD}/agent/team${i % 13}/**`] : [`${TD}/agent/team${i % 13}/a${i % 11}`];
      rules.push({ id: `r${i}`, agents, servers: i % 17 === 0 ? ['*'] : [`srv${i % 20}`, `srv${(i + 3) % 20}`], tools: { allow: [`t${i % 9}*`] } });
    }
    const big = compilePolicy({ trustDomain: 'example.org', servers, rules });
    for (const agent of ['agent/team3/a5', 'agent/team3/a5/x', 'agent/team0/a0', 'agent/other', 'agent/team12/zz', 'agent/team4/a3/b/c']) {
      const sid = SpiffeId.parse(id(agent));
      for (const server of ['srv0', 'srv7', 'srv19']) {
        const brute = big.rules.filter((r) => r.servers.match(server) !== undefined && r.agents.some((m) => m.matches(sid)));
        expect(matchingRules(big, sid, server).map((r) => r.id)).toEqual(brute.map((r) => r.id));
      }
    }
  });
});

describe('the policy file', () => {
  it.each<[string, string, RegExp]>([
    ['zones:\n  prod: { agents: [spiffe://example.org/agent/a], color: red }\n', 'zones.prod.color', /unknown key/],
    ['servers:\n  crm: { connectors: [spiffe://example.org/c/x], pinning: { mode: always } }\n', 'servers.crm.pinning.mode', /tofu, strict or off/],
    ['servers:\n  crm: { connectors: [spiffe://example.org/c/x], labels: { team: 3 } }\n', 'servers.crm.labels.team', /strings/],
    ['servers:\n  crm: { connectors: [spiffe://example.org/c/x], identityToBackend: yes }\n', 'servers.crm.identityToBackend', /true or false/],
    ['revoked: { ids: [spiffe://other.org/agent/a] }\n', 'revoked.ids[0]', /outside trust domain/],
    ['revoked: { serials: [xyz] }\n', 'revoked.serials[0]', /hex/],
    ['revoked: { agents: [] }\n', 'revoked.agents', /unknown key/],
    ['rules:\n  - { id: r, agents: [spiffe://example.org/a], servers: [crm], args: { read: { path: { glob: relative/** } } } }\n', 'rules[0].args.read.path.glob', /absolute/],
    ['rules:\n  - { id: r, agents: [spiffe://example.org/a], servers: [crm], args: { read: { path: { regex: "(a)\\\\1" } } } }\n', 'rules[0].args.read.path.regex', /backreference/],
    ['rules:\n  - { id: r, agents: [spiffe://example.org/a], servers: [crm], args: { read: { path: { glob: "/a", maxx: 3 } } } }\n', 'rules[0].args.read.path.maxx', /unknown constraint/],
    ['rules:\n  - { id: r, agents: [spiffe://example.org/a], servers: [crm], rate: { calls: 5 } }\n', 'rules[0].rate.per', /required with calls/],
    ['rules:\n  - { id: r, agents: [spiffe://example.org/a], servers: [crm], rate: { calls: 5, per: 2d } }\n', 'rules[0].rate.per', /period/],
    ['rules:\n  - { id: r, agents: [spiffe://example.org/a], servers: [crm], redact: [secrets, passwords] }\n', 'rules[0].redact[1]', /unknown profile "passwords"/],
    ['rules:\n  - { id: r, agents: [spiffe://example.org/a], servers: [crm], redact: { result: [secrets] } }\n', 'rules[0].redact.result', /unknown key/],
    ['rules:\n  - { id: r, agents: [spiffe://example.org/a], servers: [crm], resources: { allow: crm://x } }\n', 'rules[0].resources.allow', /list of strings/],
  ])('%#: refuses with the key path and line', (tail, path, rule) => {
    const base = 'trustDomain: example.org\n';
    const servers = tail.startsWith('servers:') ? '' : 'servers:\n  crm: { connectors: [spiffe://example.org/c/x] }\n';
    const text = base + servers + tail;
    let err: unknown;
    try {
      parsePolicyText(text, 'p.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    const e = err as PolicyError;
    expect(e.path).toBe(path);
    expect(e.message).toMatch(rule);
    expect(e.message).toMatch(/^policy: p\.yaml:\d+:\d+: /);
    expect(e.line).toBeGreaterThanOrEqual(3);
  });

  it('points at the exact line of a deep error', () => {
    const text = [
      'trustDomain: example.org',
      'servers:',
      '  files: { connectors: [spiffe://example.org/connector/f] }',
      'rules:',
      '  - id: r1',
      '    agents: [spiffe://example.org/agent/a]',
      '    servers: [files]',
      '    tools: { allow: [read_file] }',
      '    args:',
      '      read_file:',
      '        path:',
      '          glob: /srv/data/**',
      '          regex: "(?=x)"',
    ].join('\n');
    expect(() => parsePolicyText(text, 'p.yaml')).toThrow(/^policy: p\.yaml:13:\d+: rules\[0\]\.args\.read_file\.path\.regex: .*lookahead/);
  });
});

describe('explain', () => {
  it('says which rule decides and what applies', () => {
    const e = explainToolDecision(policy, id('agent/support/alice'), 'files', 'read_file');
    expect(e.decision).toMatchObject({ allow: true, ruleId: 'support-files' });
    expect(e.lines.join('\n')).toMatch(/rule "support-files" \(rules\[1\]\) matches: agent via spiffe:\/\/example.org\/agent\/support\/\*/);
    expect(e.lines.join('\n')).toMatch(/rule "support-files" args\.read_\*: path/);
    expect(e.lines.join('\n')).toMatch(/redaction of arguments: secrets/);
    expect(e.lines.at(-1)).toMatch(/^decision: ALLOW by rule "support-files"/);
    const d = explainToolDecision(policy, id('agent/dev/dora'), 'vault', 'get_secret');
    expect(d.lines.at(-1)).toMatch(/^decision: DENY by zone "prod-data"/);
    expect(explainToolDecision(policy, id('agent/ops/a'), 'crm', 'delete_all').lines.at(-1)).toMatch(/DENY by rule "no-deletes".*deny "\*delete\*"/);
    expect(explainToolDecision(policy, id('agent/nobody'), 'crm', 'x').lines.at(-1)).toMatch(/DENY by (zone|default deny)/);
  });
});
