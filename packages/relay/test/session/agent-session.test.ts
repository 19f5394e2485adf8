import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditRequest } from '@switchboard/audit';
import { AgentClient } from '../helpers/agent-client.js';
import { HarnessConnector } from '../helpers/harness-connector.js';
import { CRM_CONNECTOR, SAMPLER, SUPPORT, SUPPORT_2 } from '../helpers/ids.js';
import { startTestRelay, type TestRelay } from '../helpers/relay.js';
import { sleep } from '../helpers/time.js';

let t: TestRelay;
let h: HarnessConnector;

async function setup(options: Parameters<typeof startTestRelay>[0] = {}): Promise<void> {
  t = await startTestRelay(options);
  h = await HarnessConnector.connect(t, CRM_CONNECTOR, ['crm']);
}

afterEach(async () => {
  h?.close();
  await t?.close();
});

/** opened returns an agent whose session the connector has opened (OPEN_OK sent). */
async function opened(id = SUPPORT): Promise<{ agent: AgentClient; sid: number }> {
  const before = h.sessions.size;
  const agent = await AgentClient.open(t, id, 'crm');
  const s = await h.session(before + 1);
  return { agent, sid: s.id };
}

function toolCalls(): string[] {
  return h.allMessages().filter((m) => m.method === 'tools/call').map((m) => (m.params as { name: string }).name);
}

describe('tools/list is filtered to what the identity may use', () => {
  beforeEach(() => setup());

  it('filters every page, and passes cursors through', async () => {
    const { agent } = await opened();
    const page1 = await agent.call('tools/list');
    // delete_customer: denied by *delete*.
    expect(page1.result.tools.map((x: { name: string }) => x.name)).toEqual(['lookup_customer', 'get_order']);
    expect(page1.result.nextCursor).toBe('3');
    const page2 = await agent.call('tools/list', { cursor: '3' });
    // update_order: no allow; lookup_delete_log: allowed by lookup_* but denied by *delete*.
    expect(page2.result.tools.map((x: { name: string }) => x.name)).toEqual(['echo']);
    expect(page2.result.nextCursor).toBeUndefined();
    // The filtered tools keep their full definitions.
    expect(page1.result.tools[0]).toEqual({ name: 'lookup_customer', description: 'find a customer', inputSchema: { type: 'object' } });
  });

  it('walking every page yields exactly the tools the policy allows', async () => {
    const { agent } = await opened();
    const all: string[] = [];
    let cursor: string | undefined;
    do {
      const r = await agent.call('tools/list', cursor ? { cursor } : undefined);
      all.push(...r.result.tools.map((x: { name: string }) => x.name));
      cursor = r.result.nextCursor;
    } while (cursor);
    expect(all).toEqual(['lookup_customer', 'get_order', 'echo']);
  });

  it('filters responses to tools/list only, not other results that carry a tools array', async () => {
    const { agent, sid } = await opened();
    h.handler = (s, msg) =>
      msg.method === 'custom/list' ? { jsonrpc: '2.0', id: msg.id, result: { tools: [{ name: 'delete_customer' }] } } : undefined;
    const r = await agent.call('custom/list');
    expect(r.result.tools).toEqual([{ name: 'delete_customer' }]);
    expect(h.messages(sid).map((m) => m.method)).toEqual(['custom/list']);
  });

  it('a tools/list result without a tools array reaches the agent with an empty list', async () => {
    const { agent } = await opened();
    h.handler = (_s, msg) => ({ jsonrpc: '2.0', id: msg.id, result: { tools: 'not-a-list', extra: 1 } });
    const r = await agent.call('tools/list');
    expect(r.result).toEqual({ tools: [], extra: 1 });
  });
});

describe('tools/call enforcement', () => {
  it('an allowed call is forwarded as its original bytes and answered by the server', async () => {
    await setup();
    const { agent, sid } = await opened();
    const raw = '{ "jsonrpc" : "2.0", "id": 5, "method":"tools/call", "params": {"name":"get_order","arguments":{"n":1}} }';
    agent.send(raw);
    const r = await agent.next();
    expect(r).toEqual({ jsonrpc: '2.0', id: 5, result: { content: [{ type: 'text', text: `get_order on session ${sid}` }] } });
    expect(h.sessions.get(sid)?.received).toEqual([raw]);
  });

  it('denied and unknown tools get the identical answer (-32602 Unknown tool) and are never forwarded', async () => {
    await setup();
    const { agent } = await opened();
    const denied = await agent.nextRawAfter(() => agent.request('tools/call', { name: 'delete_customer', arguments: {} }, 9));
    const unknown = await agent.nextRawAfter(() => agent.request('tools/call', { name: 'no_such_tool', arguments: {} }, 9));
    expect(denied).toBe('{"jsonrpc":"2.0","id":9,"error":{"code":-32602,"message":"Unknown tool: delete_customer"}}');
    expect(unknown).toBe('{"jsonrpc":"2.0","id":9,"error":{"code":-32602,"message":"Unknown tool: no_such_tool"}}');
    // Also the deny-beats-allow case and an escaped method name.
    const both = await agent.nextRawAfter(() => agent.request('tools/call', { name: 'lookup_delete_log' }, 'x'));
    expect(JSON.parse(both).error).toEqual({ code: -32602, message: 'Unknown tool: lookup_delete_log' });
    agent.send('{"jsonrpc":"2.0","id":10,"method":"tools\\/call","params":{"name":"delete_customer"}}');
    expect(JSON.parse(await agent.nextRaw()).error.code).toBe(-32602);
    await agent.call('tools/call', { name: 'echo' });
    expect(toolCalls()).toEqual(['echo']);
    expect(t.relay.metrics().messagesDenied.tool_denied).toBe(4);
  });

  it('with enforcement.unknownToolReply=mcp-sdk the answer is byte for byte the SDK McpServer result', async () => {
    await setup({ enforcement: { unknownToolReply: 'mcp-sdk' } });
    const { agent } = await opened();
    const denied = await agent.nextRawAfter(() => agent.request('tools/call', { name: 'delete_customer' }, 1));
    const unknown = await agent.nextRawAfter(() => agent.request('tools/call', { name: 'nope' }, 1));
    expect(denied).toBe('{"result":{"content":[{"type":"text","text":"MCP error -32602: Tool delete_customer not found"}],"isError":true},"jsonrpc":"2.0","id":1}');
    expect(unknown.replace('nope', '<name>')).toBe(denied.replace('delete_customer', '<name>'));
    expect(toolCalls()).toEqual([]);
  });

  it('enforces before initialize and after it alike', async () => {
    await setup();
    const { agent } = await opened();
    const before = await agent.call('tools/call', { name: 'delete_customer' });
    await agent.call('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } });
    const after = await agent.call('tools/call', { name: 'delete_customer' });
    expect(before.error.code).toBe(-32602);
    expect(after.error).toEqual(before.error);
    expect(toolCalls()).toEqual([]);
  });

  it('tools/call without a string name is refused with -32602 and not forwarded', async () => {
    await setup();
    const { agent } = await opened();
    const r = await agent.call('tools/call', { name: 42 });
    expect(r.error).toEqual({ code: -32602, message: 'Invalid params', data: { reason: 'params.name must be a string' } });
    expect(toolCalls()).toEqual([]);
  });

  it('audits every decision with its rule, never the arguments', async () => {
    await setup();
    const { agent, sid } = await opened();
    await agent.call('tools/call', { name: 'get_order', arguments: { secret: 'ARG-SECRET-1' } }, 'a');
    await agent.call('tools/call', { name: 'delete_customer', arguments: { secret: 'ARG-SECRET-2' } }, 'b');
    const calls = t.audit.records.filter((r): r is AuditRequest => r.type === 'request');
    expect(calls).toEqual([
      expect.objectContaining({ agent: SUPPORT, server: 'crm', name: 'get_order', decision: 'allow', ruleId: 'support-reads-crm', requestId: '"a"', sessionId: expect.stringMatching(new RegExp(`/${sid}$`)) }),
      expect.objectContaining({ name: 'delete_customer', decision: 'deny', ruleId: 'support-reads-crm', requestId: '"b"' }),
    ]);
    expect(t.audit.records.find((r) => r.type === 'session.open')).toMatchObject({ connector: CRM_CONNECTOR });
    expect(JSON.stringify(t.audit.records)).not.toContain('ARG-SECRET');
  });

  it('fails closed while the audit trail is unavailable: -32050, nothing forwarded', async () => {
    await setup();
    const { agent } = await opened();
    t.audit.available = false;
    const r = await agent.call('tools/call', { name: 'get_order' });
    expect(r.error.code).toBe(-32050);
    expect(toolCalls()).toEqual([]);
    t.audit.available = true;
    expect((await agent.call('tools/call', { name: 'get_order' })).result).toBeDefined();
  });
});

describe('strict parsing of agent messages', () => {
  beforeEach(() => setup());

  it.each<[string, string, number, string | undefined]>([
    ['invalid JSON', '{"jsonrpc":"2.0",', -32700, undefined],
    ['a batch', '[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_order"}}]', -32600, 'batches are not supported'],
    ['an empty batch', '[]', -32600, 'batches are not supported'],
    ['a duplicate key (params.name twice)', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_order","name":"delete_customer"}}', -32600, 'duplicate key'],
    ['a duplicate key, escaped', '{"jsonrpc":"2.0","id":1,"method":"tools/list","\\u006dethod":"tools/call"}', -32600, 'duplicate key'],
    ['nesting deeper than 64', `{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":${'['.repeat(70)}${']'.repeat(70)}}}`, -32600, 'nesting too deep'],
    ['no jsonrpc member', '{"id":1,"method":"tools/list"}', -32600, 'not a JSON-RPC 2.0 message'],
    ['jsonrpc 1.0', '{"jsonrpc":"1.0","id":1,"method":"tools/list"}', -32600, 'not a JSON-RPC 2.0 message'],
    ['an object id', '{"jsonrpc":"2.0","id":{},"method":"tools/list"}', -32600, 'not a JSON-RPC 2.0 message'],
    ['a null request id', '{"jsonrpc":"2.0","id":null,"method":"tools/list"}', -32600, 'not a JSON-RPC 2.0 message'],
    ['a numeric method', '{"jsonrpc":"2.0","id":1,"method":5}', -32600, 'not a JSON-RPC 2.0 message'],
    ['scalar params', '{"jsonrpc":"2.0","id":1,"method":"x","params":"p"}', -32600, 'not a JSON-RPC 2.0 message'],
    ['result and error', '{"jsonrpc":"2.0","id":1,"result":{},"error":{}}', -32600, 'not a JSON-RPC 2.0 message'],
    ['a string at the top', '"tools/call"', -32600, 'not a JSON-RPC 2.0 message'],
  ])('%s → %i with id null, nothing forwarded', async (_label, raw, code, reason) => {
    const { agent, sid } = await opened();
    agent.send(raw);
    const r = await agent.next();
    expect(r.id).toBeNull();
    expect(r.error.code).toBe(code);
    expect(r.error.data?.reason).toBe(reason);
    await agent.call('ping');
    expect(h.messages(sid).map((m) => m.method)).toEqual(['ping']);
  });

  it('notifications/cancelled frees the request id: a late answer is dropped, the id can be reused', async () => {
    const { agent, sid } = await opened();
    agent.request('slow/x', undefined, 3);
    await h.until(() => h.messages(sid).length === 1, 'the request');
    agent.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 3, reason: 'timeout' } });
    await h.until(() => h.messages(sid).length === 2, 'the cancellation');
    h.sendData(sid, { jsonrpc: '2.0', id: 3, result: { late: true } });
    await expect.poll(() => t.relay.metrics().messagesDenied.unknown_response_id).toBe(1);
    // The id is free again (no "already in flight"), and the late answer above was not delivered.
    expect(await agent.call('ping', undefined, 3)).toEqual({ jsonrpc: '2.0', id: 3, result: {} });
    expect(agent.received).toHaveLength(1);
  });

  it('a tools/call sent as a notification (no id) is dropped, never forwarded', async () => {
    const { agent, sid } = await opened();
    agent.send({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'delete_customer' } });
    agent.send({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'get_order' } });
    agent.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    await agent.call('ping');
    expect(h.messages(sid).map((m) => m.method)).toEqual(['notifications/initialized', 'ping']);
    expect(t.relay.metrics().messagesDenied.invalid_request).toBe(2);
  });

  it('a request id already in flight is refused; the first request still gets its answer', async () => {
    const { agent, sid } = await opened();
    agent.request('slow/x', undefined, 7);
    agent.request('ping', undefined, 7);
    const r = await agent.next();
    expect(r.error.data.reason).toBe('request id already in flight');
    expect(h.messages(sid).map((m) => m.method)).toEqual(['slow/x']);
    h.sendData(sid, { jsonrpc: '2.0', id: 7, result: { ok: true } });
    expect(await agent.next()).toEqual({ jsonrpc: '2.0', id: 7, result: { ok: true } });
  });
});

describe('request ids are isolated per session', () => {
  beforeEach(() => setup());

  it('a reply to an id never issued is dropped (server → agent)', async () => {
    const { agent, sid } = await opened();
    h.sendData(sid, { jsonrpc: '2.0', id: 999, result: { injected: true } });
    h.sendData(sid, { jsonrpc: '2.0', id: 'x', error: { code: 1, message: 'injected' } });
    const r = await agent.call('ping');
    expect(r).toEqual({ jsonrpc: '2.0', id: r.id, result: {} });
    expect(agent.received).toHaveLength(1);
    expect(t.relay.metrics().messagesDenied.unknown_response_id).toBe(2);
  });

  it('a reply to an id never issued is dropped (agent → server)', async () => {
    const { agent, sid } = await opened();
    agent.send({ jsonrpc: '2.0', id: 'srv-1', result: {} });
    await agent.call('ping');
    expect(h.messages(sid).map((m) => m.method ?? `response ${String(m.id)}`)).toEqual(['ping']);
  });

  it('a second reply to the same id is dropped', async () => {
    const { agent, sid } = await opened();
    h.handler = () => undefined;
    agent.request('slow/a', undefined, 1);
    await h.until(() => h.messages(sid).length === 1, 'the request');
    h.sendData(sid, { jsonrpc: '2.0', id: 1, result: { n: 1 } });
    h.sendData(sid, { jsonrpc: '2.0', id: 1, result: { n: 2 } });
    expect(await agent.next()).toEqual({ jsonrpc: '2.0', id: 1, result: { n: 1 } });
    await agent.expectQuiet();
  });

  it('two agents using the same ids each get only their own replies', async () => {
    const a = await opened(SUPPORT);
    const b = await opened(SUPPORT_2);
    h.handler = () => undefined;
    a.agent.request('tools/call', { name: 'echo' }, 1);
    b.agent.request('tools/call', { name: 'echo' }, 1);
    await h.until(() => h.messages(a.sid).length === 1 && h.messages(b.sid).length === 1, 'both requests');
    // The server answers B first, then tries to answer A's id on B's session again.
    h.sendData(b.sid, { jsonrpc: '2.0', id: 1, result: { for: 'b' } });
    h.sendData(b.sid, { jsonrpc: '2.0', id: 1, result: { for: 'a?' } });
    h.sendData(a.sid, { jsonrpc: '2.0', id: 1, result: { for: 'a' } });
    expect(await a.agent.next()).toEqual({ jsonrpc: '2.0', id: 1, result: { for: 'a' } });
    expect(await b.agent.next()).toEqual({ jsonrpc: '2.0', id: 1, result: { for: 'b' } });
    await a.agent.expectQuiet(100);
    await b.agent.expectQuiet(0);
    expect(a.agent.received).toHaveLength(1);
    expect(b.agent.received).toHaveLength(1);
  });
});

describe('server → agent requests', () => {
  beforeEach(() => setup());

  const sampling = { jsonrpc: '2.0', id: 's1', method: 'sampling/createMessage', params: { messages: [], maxTokens: 10 } };

  it('sampling is denied by default: the server gets -32001 and the agent never sees it', async () => {
    const { agent, sid } = await opened();
    h.sendData(sid, sampling);
    const reply = await h.until(() => h.messages(sid).find((m) => m.id === 's1'), 'the denial');
    expect(reply).toEqual({
      jsonrpc: '2.0',
      id: 's1',
      error: { code: -32001, message: 'sampling/createMessage is not allowed for this session by policy' },
    });
    await agent.call('ping');
    expect(agent.received).toHaveLength(1);
    expect(t.audit.records.find((r) => r.type === 'request')).toMatchObject({ direction: 'server-to-agent', method: 'sampling/createMessage', decision: 'deny', ruleId: null });
  });

  it.each(['elicitation/create', 'roots/list'])('%s is denied by default', async (method) => {
    const { agent, sid } = await opened();
    h.sendData(sid, { jsonrpc: '2.0', id: 3, method });
    const reply = await h.until(() => h.messages(sid).find((m) => m.id === 3), 'the denial');
    expect(reply.error.code).toBe(-32001);
    await agent.call('ping');
    expect(agent.received).toHaveLength(1);
  });

  it('an unknown server → agent request is answered -32601 by the relay', async () => {
    const { agent, sid } = await opened();
    h.sendData(sid, { jsonrpc: '2.0', id: 4, method: 'shell/exec', params: {} });
    const reply = await h.until(() => h.messages(sid).find((m) => m.id === 4), 'the answer');
    expect(reply.error).toEqual({ code: -32601, message: 'Method not found' });
    await agent.call('ping');
    expect(agent.received).toHaveLength(1);
  });

  it('sampling passes where policy allows it, and the agent’s answer reaches the server', async () => {
    const { agent, sid } = await opened(SAMPLER);
    h.sendData(sid, sampling);
    const req = await agent.next();
    expect(req).toEqual(sampling);
    agent.send({ jsonrpc: '2.0', id: 's1', result: { role: 'assistant', content: { type: 'text', text: 'hi' } } });
    const answer = await h.until(() => h.messages(sid).find((m) => m.id === 's1'), 'the answer');
    expect(answer.result.content.text).toBe('hi');
    expect(t.audit.records.find((r) => r.type === 'request' && r.direction === 'server-to-agent')).toMatchObject({ decision: 'allow', ruleId: 'sampler' });
  });

  it('ping and notifications from the server pass', async () => {
    const { agent, sid } = await opened();
    h.sendData(sid, { jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    h.sendData(sid, { jsonrpc: '2.0', id: 'p', method: 'ping' });
    expect(await agent.next()).toEqual({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    expect(await agent.next()).toEqual({ jsonrpc: '2.0', id: 'p', method: 'ping' });
    agent.send({ jsonrpc: '2.0', id: 'p', result: {} });
    await h.until(() => h.messages(sid).find((m) => m.id === 'p'), 'the pong');
  });

  it('a server notification outside notifications/ is dropped', async () => {
    const { agent, sid } = await opened();
    h.sendData(sid, { jsonrpc: '2.0', method: 'sampling/createMessage', params: { messages: [] } });
    h.sendData(sid, { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } });
    expect((await agent.next()).method).toBe('notifications/progress');
    await agent.expectQuiet();
  });

  it('an invalid server message (duplicate keys, not JSON-RPC, bad UTF-8) is dropped', async () => {
    const { agent, sid } = await opened();
    h.handler = () => undefined;
    agent.request('slow/x', undefined, 1);
    await h.until(() => h.messages(sid).length === 1, 'the request');
    h.sendData(sid, '{"jsonrpc":"2.0","id":2,"id":1,"result":{}}');
    h.sendData(sid, '{"id":1,"result":{}}');
    h.sendData(sid, Buffer.from([0x7b, 0xff, 0x7d]));
    h.sendData(sid, { jsonrpc: '2.0', id: 1, result: { real: true } });
    expect(await agent.next()).toEqual({ jsonrpc: '2.0', id: 1, result: { real: true } });
    expect(t.relay.metrics().messagesDenied.invalid_server_message).toBe(3);
  });
});

describe('backend and link failures', () => {
  beforeEach(() => setup());

  it('backend CLOSE 4502: the agent gets -32051 for each outstanding request, then close 4502', async () => {
    const { agent, sid } = await opened();
    agent.request('slow/a', undefined, 1);
    agent.request('slow/b', undefined, 'two');
    await h.until(() => h.messages(sid).length === 2, 'both requests');
    h.closeSession(sid, 4502, 'backend exited (code 1)');
    const errs = [await agent.next(), await agent.next()];
    expect(errs).toEqual([
      { jsonrpc: '2.0', id: 1, error: { code: -32051, message: 'Backend session ended before answering' } },
      { jsonrpc: '2.0', id: 'two', error: { code: -32051, message: 'Backend session ended before answering' } },
    ]);
    expect(await agent.closedWithin()).toEqual({ code: 4502, reason: 'backend exited (code 1)' });
    expect(t.audit.records.find((r) => r.type === 'session.close')).toMatchObject({ code: 4502, sessionId: expect.stringMatching(new RegExp(`^[0-9a-f]{16}/${sid}$`)) });
  });

  it('OPEN_FAIL: the agent is closed with 4502', async () => {
    h.onOpen = () => 'fail';
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    expect(await agent.closedWithin()).toEqual({ code: 4502, reason: 'backend failed to start' });
  });

  it('the link drops: sessions are closed with 4509', async () => {
    const { agent } = await opened();
    h.ws.terminate();
    expect((await agent.closedWithin()).code).toBe(4509);
    expect(t.relay.metrics().linksUp).toBe(0);
  });

  it('an agent disconnect sends CLOSE 1000 to the connector', async () => {
    const { agent, sid } = await opened();
    agent.ws.close(1000);
    const s = await h.until(() => h.sessions.get(sid)?.closedBy, 'CLOSE');
    expect(s).toEqual({ code: 1000, reason: 'agent closed' });
    await expect.poll(() => t.relay.metrics().sessionsOpen).toBe(0);
  });

  it('a binary frame closes the session with 1003', async () => {
    const { agent, sid } = await opened();
    agent.ws.send(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping"}'), { binary: true });
    expect((await agent.closedWithin()).code).toBe(1003);
    expect(h.messages(sid)).toEqual([]);
    expect((await h.until(() => h.sessions.get(sid)?.closedBy, 'CLOSE')).code).toBe(1003);
  });

  it('invalid UTF-8 in a text frame closes the session with 1007', async () => {
    const { agent, sid } = await opened();
    agent.ws.send(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]), { binary: false });
    expect((await agent.closedWithin()).code).toBe(1007);
    expect(h.messages(sid)).toEqual([]);
    // Recorded as it was sent to the agent, not as the 1006 ws reports after closing it itself.
    await expect.poll(() => t.audit.records.filter((r) => r.type === 'session.close')).toEqual([expect.objectContaining({ code: 1007, reason: 'Invalid WebSocket frame: invalid UTF-8 sequence' })]);
    expect(t.relay.metrics().sessionsClosed).toEqual({ 1007: 1 });
  });

  it('messages sent before OPEN_OK are queued and delivered in order', async () => {
    h.onOpen = () => 'ignore';
    const agent = await AgentClient.open(t, SUPPORT, 'crm');
    const s = await h.session(1);
    agent.request('ping', undefined, 1);
    agent.request('tools/call', { name: 'echo' }, 2);
    await sleep(100);
    expect(s.received).toEqual([]);
    h.sendFrame((await import('@switchboard/protocol')).encodeControl(0x11, s.id, {}));
    expect((await agent.next()).id).toBe(1);
    expect((await agent.next()).id).toBe(2);
  });
});

// nextRawAfter: send something, then return the next raw agent message.
declare module '../helpers/agent-client.js' {
  interface AgentClient {
    nextRawAfter(send: () => unknown): Promise<string>;
  }
}
AgentClient.prototype.nextRawAfter = async function nextRawAfter(this: AgentClient, send: () => unknown): Promise<string> {
  send();
  return this.nextRaw();
};
