// Methods the relay does not know (a newer MCP revision's tasks/*, a vendor's extension) are
// refused by default with -32601, audited, and never reach the server; a rule's `methods` allows
// them, deny beats allow; the methods the relay does know pass as before.
import { afterEach, describe, expect, it } from 'vitest';
import type { PolicyDocument } from '../../src/policy/document.js';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, SUPPORT, TD } from '../helpers/ids.js';
import { startTestRelay, type TestRelay } from '../helpers/relay.js';

let t: TestRelay;
let h: HarnessConnector;
afterEach(async () => {
  h?.close();
  await t?.close();
});

const policy = (methods?: { allow?: string[]; deny?: string[] }, extra: PolicyDocument['rules'] = []): PolicyDocument => ({
  trustDomain: 'example.org',
  servers: { crm: { connectors: [CRM_CONNECTOR] } },
  rules: [{ id: 'support', agents: [`${TD}/agent/support/*`], servers: ['crm'], tools: { allow: ['echo'] }, ...(methods ? { methods } : {}) }, ...extra],
});

async function open(p: PolicyDocument): Promise<AgentClient> {
  t = await startTestRelay({ policy: p });
  h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
  // The harness answers every request it gets with the method's name.
  h.handler = (_s, msg) => (msg.id === undefined ? undefined : { jsonrpc: '2.0', id: msg.id, result: { method: msg.method } });
  const agent = await AgentClient.open(t, SUPPORT, 'crm');
  await h.session(1);
  return agent;
}

describe('request methods the relay does not know', () => {
  it('are refused by default with -32601, audited as denied, and never forwarded', async () => {
    const agent = await open(policy());
    expect(await agent.call('tasks/list', {}, 7)).toEqual({ jsonrpc: '2.0', id: 7, error: { code: -32601, message: 'Method not found' } });
    expect(await agent.call('vendor/exec', { cmd: 'id' }, 8)).toEqual({ jsonrpc: '2.0', id: 8, error: { code: -32601, message: 'Method not found' } });
    expect(h.allMessages().map((m) => m.method)).toEqual([]);
    expect(t.relay.metrics().messagesDenied.method_denied).toBe(2);
    const records = t.audit.records.filter((r) => r.type === 'request');
    expect(records).toEqual([
      expect.objectContaining({ method: 'tasks/list', decision: 'deny', ruleId: null, reason: 'method "tasks/list" is not one the relay forwards, and no rule allows it on server "crm" (rules[].methods.allow)' }),
      expect.objectContaining({ method: 'vendor/exec', decision: 'deny', ruleId: null }),
    ]);
  });

  it('the methods the relay knows pass without a methods rule', async () => {
    const agent = await open(policy());
    for (const [i, method] of ['initialize', 'ping', 'logging/setLevel', 'resources/unsubscribe'].entries()) {
      expect((await agent.call(method, {}, i)).result).toEqual({ method });
    }
    expect(h.allMessages().map((m) => m.method)).toEqual(['initialize', 'ping', 'logging/setLevel', 'resources/unsubscribe']);
    expect(t.relay.metrics().messagesDenied.method_denied).toBe(0);
  });

  it('a rule allows them by glob; a deny in any matching rule beats it', async () => {
    const agent = await open(policy({ allow: ['tasks/*'], deny: ['tasks/cancel'] }));
    expect((await agent.call('tasks/list', {}, 1)).result).toEqual({ method: 'tasks/list' });
    expect((await agent.call('tasks/get', { taskId: 'a' }, 2)).result).toEqual({ method: 'tasks/get' });
    expect((await agent.call('tasks/cancel', {}, 3)).error).toEqual({ code: -32601, message: 'Method not found' });
    expect((await agent.call('vendor/exec', {}, 4)).error?.code).toBe(-32601);
    expect(h.allMessages().map((m) => m.method)).toEqual(['tasks/list', 'tasks/get']);
    const decided = t.audit.records.filter((r) => r.type === 'request').map((r) => [r.type === 'request' && r.method, r.type === 'request' && r.decision, r.type === 'request' && r.ruleId]);
    expect(decided).toEqual([
      ['tasks/list', 'allow', 'support'],
      ['tasks/get', 'allow', 'support'],
      ['tasks/cancel', 'deny', 'support'],
      ['vendor/exec', 'deny', null],
    ]);
  });

  it('a rule that allows only methods still grants the session', async () => {
    t = await startTestRelay({ policy: { trustDomain: 'example.org', servers: { crm: { connectors: [CRM_CONNECTOR] } }, rules: [{ id: 'm', agents: [SUPPORT], servers: ['crm'], methods: { allow: ['tasks/list'] } }] } });
    h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
    h.handler = (_s, msg) => (msg.id === undefined ? undefined : { jsonrpc: '2.0', id: msg.id, result: { method: msg.method } });
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    expect((await agent.call('tasks/list', {}, 1)).result).toEqual({ method: 'tasks/list' });
  });
});
