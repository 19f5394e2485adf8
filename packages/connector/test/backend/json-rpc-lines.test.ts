import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ReadBuffer } from '@modelcontextprotocol/sdk/shared/stdio.js';
import { describe, expect, it } from 'vitest';
import { JsonRpcLineBuffer } from '../../src/backend/json-rpc-lines.js';

describe('JsonRpcLineBuffer', () => {
  it('is the kind of line reader the SDK transport holds, so the stdio backend can swap it in', () => {
    const transport = new StdioClientTransport({ command: process.execPath });
    expect((transport as unknown as { _readBuffer: unknown })._readBuffer).toBeInstanceOf(ReadBuffer);
    expect(new JsonRpcLineBuffer()).toBeInstanceOf(ReadBuffer);
  });

  it('reads what the SDK reader reads, however the stream is cut (lines across chunks, CRLF, split UTF-8)', () => {
    const lines = [
      '{"id":1,"jsonrpc":"2.0","result":{}}\r',
      '{ "jsonrpc" : "2.0", "method" : "notifications/message", "params" : { "data" : "é€😀" } }',
      'server starting',
      '',
      '{"jsonrpc":"2.0","id":"ü","result":{"x":"ü"},"extra":1}',
      `{"jsonrpc":"2.0","id":2,"result":{"text":"${'y'.repeat(3000)}"}}`,
      '{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"m"}}',
    ];
    const bytes = Buffer.from(lines.join('\n') + '\n{"jsonrpc":"2.0","id":4,"res');
    let seed = 7;
    const rand = (k: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % k;
    };
    // Messages compare as values: the SDK's zod copy orders keys its own way.
    const drain = (r: ReadBuffer, out: unknown[], withLines: boolean): void => {
      for (;;) {
        let m;
        try {
          m = r.readMessage();
        } catch (err) {
          out.push(err instanceof SyntaxError ? 'not JSON' : 'not JSON-RPC');
          continue;
        }
        if (m === null) return;
        out.push(m);
        if (withLines) out.push(`line ${(r as JsonRpcLineBuffer).lineOf(m)}`);
      }
    };
    for (let round = 0; round < 300; round++) {
      const ours = new JsonRpcLineBuffer();
      const sdk = new ReadBuffer();
      const got: unknown[] = [];
      const want: unknown[] = [];
      const step = [1, 3, 17, 64, 1000, 5000][round % 6] as number;
      for (let at = 0; at < bytes.length; ) {
        const next = Math.min(bytes.length, at + 1 + rand(step));
        ours.append(bytes.subarray(at, next));
        sdk.append(bytes.subarray(at, next));
        drain(ours, got, true);
        drain(sdk, want, false);
        at = next;
      }
      const isLine = (x: unknown): boolean => typeof x === 'string' && x.startsWith('line ');
      expect(got.filter((x) => !isLine(x))).toEqual(want);
      // The line of each message is the backend's text, without its "\r".
      expect(got.filter(isLine)).toEqual([lines[0]!.slice(0, -1), lines[1], lines[5], lines[6]].map((l) => `line ${l}`));
    }
  });

  it('hands back a line only for the message just read, once', () => {
    const b = new JsonRpcLineBuffer();
    b.append(Buffer.from('{"jsonrpc":"2.0","id":1,"result":{}}\n{"jsonrpc":"2.0","id":2,"result":{}}\n'));
    const first = b.readMessage();
    const second = b.readMessage();
    expect(b.lineOf(first as never)).toBeUndefined();
    expect(b.lineOf(second as never)).toBe('{"jsonrpc":"2.0","id":2,"result":{}}');
    expect(b.lineOf(second as never)).toBeUndefined();
  });

  it('throws on a line that is not JSON or not JSON-RPC, and reads on after it', () => {
    const b = new JsonRpcLineBuffer();
    b.append(Buffer.from('server starting\n{"jsonrpc":"2.0","id":1,"result":{},"x":1}\n{"jsonrpc":"2.0","id":1,"result":{}}\n'));
    expect(() => b.readMessage()).toThrow(SyntaxError);
    expect(() => b.readMessage()).toThrow(/not one JSON-RPC 2.0 message/);
    const m = b.readMessage();
    expect(m).toEqual({ jsonrpc: '2.0', id: 1, result: {} });
    expect(b.lineOf(m as never)).toBe('{"jsonrpc":"2.0","id":1,"result":{}}');
    expect(b.readMessage()).toBeNull();
  });

  it('keeps the SDK size bound: unread bytes beyond it throw and are dropped, and reading goes on after', () => {
    for (const make of [(o: { maxBufferSize: number }) => new JsonRpcLineBuffer(o), (o: { maxBufferSize: number }) => new ReadBuffer(o)]) {
      const b = make({ maxBufferSize: 40 });
      b.append(Buffer.from('{"jsonrpc":"2.0","id":1,"result":{}}\n'));
      expect(b.readMessage()).toEqual({ jsonrpc: '2.0', id: 1, result: {} });
      b.append(Buffer.alloc(20, 0x20));
      b.append(Buffer.alloc(20, 0x20));
      expect(() => b.append(Buffer.from(' '))).toThrow('ReadBuffer exceeded maximum size of 40 bytes');
      expect(b.readMessage()).toBeNull();
      b.append(Buffer.from('{"jsonrpc":"2.0","id":2,"result":{}}\n'));
      expect(b.readMessage()).toEqual({ jsonrpc: '2.0', id: 2, result: {} });
    }
  });

  it('reads a 16 MiB message that arrives in 64 KiB chunks in linear time', () => {
    const line = Buffer.from(`{"jsonrpc":"2.0","id":1,"result":{"text":"${'x'.repeat(16 * 1024 * 1024 - 64)}"}}\n`);
    const b = new JsonRpcLineBuffer({ maxBufferSize: 17 * 1024 * 1024 });
    let message = null;
    for (let at = 0; at < line.length; at += 65536) {
      b.append(line.subarray(at, at + 65536));
      message = b.readMessage() ?? message;
    }
    expect(b.lineOf(message as never)?.length).toBe(line.length - 1);
  });
});
