// withTraceparent: the relay hands its call span to the next hop in params._meta, leaving every
// other byte of the request as the agent sent it.
import { describe, expect, it } from 'vitest';
import { RequestParams, withTraceparent } from '../../src/message/request-params.js';
import { MessageShape, scanMessage } from '../../src/message/strict-json.js';

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

function params(text: string): { buf: Buffer; p: RequestParams } {
  const buf = Buffer.from(text, 'utf8');
  const shape = new MessageShape();
  scanMessage(buf, 64, shape);
  return { buf, p: RequestParams.of(buf, shape) as RequestParams };
}

describe('withTraceparent', () => {
  it('inserts _meta at the start of params; every other byte, a 20-digit number and spacing included, stays', () => {
    const text = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{ "name" : "get",  "arguments":{"n":12345678901234567890}}}';
    const { buf, p } = params(text);
    const out = withTraceparent(buf, p, TP).toString('utf8');
    expect(out).toBe(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"_meta":{"traceparent":"${TP}"}, "name" : "get",  "arguments":{"n":12345678901234567890}}}`);
    expect(JSON.parse(out).params._meta).toEqual({ traceparent: TP });
  });

  it("replaces the agent's own traceparent and keeps the rest of its _meta", () => {
    const { buf, p } = params('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"traceparent":"00-11111111111111111111111111111111-2222222222222222-01","progressToken":5}}}');
    const out = JSON.parse(withTraceparent(buf, p, TP).toString('utf8'));
    expect(out.params).toEqual({ name: 'x', _meta: { traceparent: TP, progressToken: 5 } });
  });

  it('works on a request whose arguments were redacted (same prefix and suffix)', () => {
    const { buf, p } = params('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"key":"AKIAIOSFODNN7EXAMPLE"}},"extra":true}');
    const redacted = p.withArguments({ key: '[REDACTED]' });
    const out = JSON.parse(withTraceparent(redacted, p, TP).toString('utf8'));
    expect(out).toEqual({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { _meta: { traceparent: TP }, name: 'x', arguments: { key: '[REDACTED]' } }, extra: true });
  });
});
