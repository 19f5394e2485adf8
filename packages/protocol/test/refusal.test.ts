import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_REFUSAL_REASON_CHARS, readRefusalReason, refusalBody } from '../src/refusal.js';

let server: Server | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** respond serves one response written by `write`, fetches it and returns what the reader read. */
async function respond(write: (res: import('node:http').ServerResponse) => void): Promise<string> {
  server = createServer((_req, res) => write(res));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
  const reason = await readRefusalReason(res);
  res.destroy();
  return reason;
}

describe('refusal body', () => {
  it('is the reason on one line', () => {
    expect(refusalBody('this identity may not use this server')).toBe('this identity may not use this server\n');
    expect(refusalBody('two\r\nlines\nhere')).toBe('two lines here\n');
  });

  it('reads back what the relay writes', async () => {
    const body = refusalBody('this identity may not use this server');
    expect(await respond((res) => res.writeHead(403, { 'content-type': 'text/plain' }).end(body))).toBe('this identity may not use this server');
  });

  it('reads the first line only, trimmed', async () => {
    expect(await respond((res) => res.writeHead(400).end('  first line  \nsecond line\n'))).toBe('first line');
  });

  it('an empty body reads as ""', async () => {
    expect(await respond((res) => res.writeHead(404).end())).toBe('');
  });

  it('a huge body is not buffered: the reader settles after the first chunk past the bound, cut to its limit', async () => {
    const reason = await respond((res) => {
      res.writeHead(403);
      // A body that never ends: the reader must settle without waiting for it.
      res.write('y'.repeat(4096));
    });
    expect(reason).toBe('y'.repeat(MAX_REFUSAL_REASON_CHARS));
  });
});
