import { describe, expect, it } from 'vitest';
import {
  FrameType,
  HEADER_BYTES,
  LinkProtocolError,
  MAX_HELLO_SERVERS,
  decodeFrame,
  encodeControl,
  encodeData,
  encodeWindow,
} from '../src/link-frames.js';

function raw(type: number, sessionId: number, payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const buf = Buffer.alloc(HEADER_BYTES + body.length);
  buf[0] = type;
  buf.writeUInt32BE(sessionId, 1);
  body.copy(buf, HEADER_BYTES);
  return buf;
}

function refused(buf: Buffer): string {
  try {
    decodeFrame(buf);
  } catch (err) {
    expect(err).toBeInstanceOf(LinkProtocolError);
    expect((err as LinkProtocolError).code).toBe('LINK_ERR_PROTOCOL');
    return (err as Error).message;
  }
  throw new Error('decodeFrame accepted the frame');
}

const WELCOME = { version: 1, linkId: 'l1', relay: 'spiffe://td/relay', accepted: ['crm'], rejected: [{ server: 'x', reason: 'no' }], window: 1024 };

describe('frame layout', () => {
  it('DATA: type byte, big-endian session id, then the message bytes unchanged', () => {
    const msg = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"s":"é"}}';
    const buf = encodeData(0x01020304, msg);
    expect([...buf.subarray(0, HEADER_BYTES)]).toEqual([0x20, 1, 2, 3, 4]);
    expect(buf.subarray(HEADER_BYTES).toString('utf8')).toBe(msg);
    expect(encodeData(7, Buffer.from(msg))).toEqual(encodeData(7, msg));
    const frame = decodeFrame(buf);
    expect(frame.type).toBe(FrameType.DATA);
    expect(frame.sessionId).toBe(0x01020304);
    if (frame.type !== FrameType.DATA) throw new Error('not DATA');
    expect(frame.data.toString('utf8')).toBe(msg);
  });

  it('DATA may be empty and carries the largest session id', () => {
    const frame = decodeFrame(encodeData(0xffffffff, ''));
    expect(frame).toMatchObject({ type: FrameType.DATA, sessionId: 0xffffffff });
    if (frame.type === FrameType.DATA) expect(frame.data.length).toBe(0);
  });

  it('WINDOW: exactly four bytes of big-endian credit', () => {
    const buf = encodeWindow(9, 0xdeadbeef);
    expect([...buf]).toEqual([0x21, 0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef]);
    expect(decodeFrame(buf)).toEqual({ type: FrameType.WINDOW, sessionId: 9, increment: 0xdeadbeef });
  });

  it('encodeWindow refuses increments a frame cannot carry', () => {
    for (const bad of [0, -1, 1.5, 2 ** 32, Number.NaN]) expect(() => encodeWindow(1, bad)).toThrow(RangeError);
  });

  it('encodeControl refuses the two binary frame types', () => {
    expect(() => encodeControl(FrameType.DATA, 1, {})).toThrow(TypeError);
    expect(() => encodeControl(FrameType.WINDOW, 1, {})).toThrow(TypeError);
  });

  it('every control frame round-trips with its payload', () => {
    const cases = [
      [FrameType.HELLO, 0, { version: 1, servers: ['crm', 'files'], agent: 'switchboard-connector/1' }],
      [FrameType.WELCOME, 0, WELCOME],
      [FrameType.GOAWAY, 0, { code: 1001, reason: 'relay shutting down' }],
      [FrameType.OPEN, 5, { server: 'crm', agent: 'spiffe://td/agent/a', jwtSvid: 'e.y.j' }],
      [FrameType.OPEN_OK, 5, {}],
      [FrameType.OPEN_FAIL, 5, { code: 4502, reason: 'spawn failed' }],
      [FrameType.CLOSE, 5, { code: 1000, reason: '' }],
    ] as const;
    for (const [type, sessionId, payload] of cases) {
      expect(decodeFrame(encodeControl(type, sessionId, payload))).toEqual({ type, sessionId, payload });
    }
  });
});

describe('framing errors', () => {
  it('a frame shorter than its header', () => {
    expect(refused(Buffer.from([0x20, 0, 0, 1]))).toBe('link: frame of 4 bytes is shorter than its header');
  });

  it('an unknown frame type', () => {
    expect(refused(raw(0x7f, 1, ''))).toBe('link: unknown frame type 0x7f');
  });

  it('link-level frames carry session id 0 and session frames do not', () => {
    expect(refused(raw(FrameType.HELLO, 3, '{}'))).toBe('link: link-level frame with a session id');
    expect(refused(raw(FrameType.OPEN, 0, '{}'))).toBe('link: session frame with session id 0');
    expect(refused(raw(FrameType.DATA, 0, ''))).toBe('link: session frame with session id 0');
  });

  it('WINDOW of the wrong length or zero credit', () => {
    expect(refused(raw(FrameType.WINDOW, 1, Buffer.alloc(3)))).toBe('link: WINDOW frame must carry exactly 4 bytes');
    expect(refused(raw(FrameType.WINDOW, 1, Buffer.alloc(5)))).toBe('link: WINDOW frame must carry exactly 4 bytes');
    expect(refused(raw(FrameType.WINDOW, 1, Buffer.alloc(4)))).toBe('link: WINDOW increment must be positive');
  });

  it('a control payload that is not JSON, or not an object', () => {
    expect(refused(raw(FrameType.OPEN, 1, '{'))).toBe('link: control frame 0x10 does not carry valid JSON');
    expect(refused(raw(FrameType.OPEN, 1, '[]'))).toBe('link: control frame 0x10 payload must be a JSON object');
    expect(refused(raw(FrameType.CLOSE, 1, 'null'))).toBe('link: control frame 0x30 payload must be a JSON object');
  });
});

describe('payload checks', () => {
  const ctl = (type: number, sessionId: number, payload: unknown): Buffer => raw(type, sessionId, JSON.stringify(payload));

  it('HELLO', () => {
    expect(refused(ctl(FrameType.HELLO, 0, { servers: [] }))).toBe('link: HELLO.version must be a positive integer');
    expect(refused(ctl(FrameType.HELLO, 0, { version: 0, servers: [] }))).toBe('link: HELLO.version must be a positive integer');
    expect(refused(ctl(FrameType.HELLO, 0, { version: 1.5, servers: [] }))).toBe('link: HELLO.version must be a positive integer');
    expect(refused(ctl(FrameType.HELLO, 0, { version: 1, servers: 'crm' }))).toBe(`link: HELLO.servers must be a list of at most ${MAX_HELLO_SERVERS} server names`);
    expect(refused(ctl(FrameType.HELLO, 0, { version: 1, servers: [1] }))).toBe(`link: HELLO.servers must be a list of at most ${MAX_HELLO_SERVERS} server names`);
    const tooMany = Array.from({ length: MAX_HELLO_SERVERS + 1 }, (_, i) => `s${i}`);
    expect(refused(ctl(FrameType.HELLO, 0, { version: 1, servers: tooMany }))).toBe(`link: HELLO.servers must be a list of at most ${MAX_HELLO_SERVERS} server names`);
    expect(refused(ctl(FrameType.HELLO, 0, { version: 1, servers: [], agent: 7 }))).toBe('link: HELLO.agent must be a string');
    // A newer peer's extra fields are dropped, not refused.
    expect(decodeFrame(ctl(FrameType.HELLO, 0, { version: 2, servers: ['a'], future: true }))).toEqual({ type: FrameType.HELLO, sessionId: 0, payload: { version: 2, servers: ['a'] } });
  });

  it('WELCOME', () => {
    const without = (k: string): Record<string, unknown> => Object.fromEntries(Object.entries(WELCOME).filter(([key]) => key !== k));
    expect(refused(ctl(FrameType.WELCOME, 0, without('version')))).toBe('link: WELCOME.version must be a positive integer');
    expect(refused(ctl(FrameType.WELCOME, 0, without('linkId')))).toBe('link: WELCOME.linkId must be a string');
    expect(refused(ctl(FrameType.WELCOME, 0, without('relay')))).toBe('link: WELCOME.relay must be a string');
    expect(refused(ctl(FrameType.WELCOME, 0, { ...WELCOME, accepted: [null] }))).toBe('link: WELCOME.accepted must be a list of server names');
    expect(refused(ctl(FrameType.WELCOME, 0, { ...WELCOME, rejected: [{ reason: 'x' }] }))).toBe('link: WELCOME.rejected must be a list of { server, reason }');
    expect(refused(ctl(FrameType.WELCOME, 0, { ...WELCOME, rejected: [{ server: 'x', reason: 1 }] }))).toBe('link: WELCOME.rejected must be a list of { server, reason }');
    for (const window of [0, -1, 2 ** 32, 1.5, '1024']) {
      expect(refused(ctl(FrameType.WELCOME, 0, { ...WELCOME, window }))).toBe('link: WELCOME.window must be an integer from 1 to 2^32-1');
    }
    // rejected may be left out, and a rejection without a reason gets an empty one.
    expect(decodeFrame(ctl(FrameType.WELCOME, 0, { ...without('rejected') }))).toMatchObject({ payload: { rejected: [] } });
    expect(decodeFrame(ctl(FrameType.WELCOME, 0, { ...WELCOME, rejected: [{ server: 'x' }] }))).toMatchObject({ payload: { rejected: [{ server: 'x', reason: '' }] } });
  });

  it('EVENT (egress.denied) and WELCOME.events', () => {
    const ok = { kind: 'egress.denied', destination: 'exfil.attacker.example', port: 443, reason: 'exfil.attacker.example:443 is not in egress' };
    expect(decodeFrame(ctl(FrameType.EVENT, 9, { ...ok, extra: 1 }))).toEqual({ type: FrameType.EVENT, sessionId: 9, payload: ok });
    expect(refused(ctl(FrameType.EVENT, 0, ok))).toBe('link: session frame with session id 0');
    expect(refused(ctl(FrameType.EVENT, 9, { ...ok, kind: 'other' }))).toBe('link: EVENT.kind must be "egress.denied"');
    expect(refused(ctl(FrameType.EVENT, 9, { ...ok, destination: '' }))).toBe('link: EVENT.destination must be a string of 1–512 characters');
    expect(refused(ctl(FrameType.EVENT, 9, { ...ok, destination: 'x'.repeat(513) }))).toBe('link: EVENT.destination must be a string of 1–512 characters');
    expect(refused(ctl(FrameType.EVENT, 9, { ...ok, port: 70000 }))).toBe('link: EVENT.port must be an integer from 0 to 65535');
    expect(refused(ctl(FrameType.EVENT, 9, { ...ok, reason: 7 }))).toBe('link: EVENT.reason must be a string of at most 512 characters');
    expect(decodeFrame(ctl(FrameType.WELCOME, 0, { ...WELCOME, events: true }))).toMatchObject({ payload: { events: true } });
    expect(refused(ctl(FrameType.WELCOME, 0, { ...WELCOME, events: 'yes' }))).toBe('link: WELCOME.events must be true or false');
  });

  it('OPEN', () => {
    expect(refused(ctl(FrameType.OPEN, 1, { agent: 'a' }))).toBe('link: OPEN.server must be a string');
    expect(refused(ctl(FrameType.OPEN, 1, { server: 'crm' }))).toBe('link: OPEN.agent must be a string');
    expect(refused(ctl(FrameType.OPEN, 1, { server: 'crm', agent: 'a', jwtSvid: {} }))).toBe('link: OPEN.jwtSvid must be a string');
    expect(decodeFrame(ctl(FrameType.OPEN, 1, { server: 'crm', agent: 'a' }))).toEqual({ type: FrameType.OPEN, sessionId: 1, payload: { server: 'crm', agent: 'a' } });
    expect(refused(ctl(FrameType.OPEN, 1, { server: 'crm', agent: 'a', resumable: 'yes' }))).toBe('link: OPEN.resumable must be true or false');
    const cred = { id: 'A'.repeat(22), secret: 'b'.repeat(43) };
    for (const resume of [{}, { id: cred.id }, { id: 'short', secret: cred.secret }, { id: cred.id, secret: 'has space and is long enough!!' }, 'x']) {
      expect(refused(ctl(FrameType.OPEN, 1, { server: 'crm', agent: 'a', resume }))).toBe('link: OPEN.resume must be { id, secret } of 16–64 base64url characters each');
    }
    expect(decodeFrame(ctl(FrameType.OPEN, 1, { server: 'crm', agent: 'a', resumable: true, resume: { ...cred, extra: 1 } }))).toEqual({
      type: FrameType.OPEN,
      sessionId: 1,
      payload: { server: 'crm', agent: 'a', resumable: true, resume: cred },
    });
  });

  it('OPEN_OK carries an optional resume credential and resumed flag', () => {
    const cred = { id: 'A'.repeat(22), secret: 'b'.repeat(43) };
    expect(decodeFrame(ctl(FrameType.OPEN_OK, 1, {}))).toEqual({ type: FrameType.OPEN_OK, sessionId: 1, payload: {} });
    expect(decodeFrame(ctl(FrameType.OPEN_OK, 1, { resumed: true, resume: { ...cred, graceMs: 30000 } }))).toEqual({
      type: FrameType.OPEN_OK,
      sessionId: 1,
      payload: { resumed: true, resume: { ...cred, graceMs: 30000 } },
    });
    expect(refused(ctl(FrameType.OPEN_OK, 1, { resume: cred }))).toBe('link: OPEN_OK.resume must be { id, secret, graceMs }');
    expect(refused(ctl(FrameType.OPEN_OK, 1, { resume: { ...cred, graceMs: -1 } }))).toBe('link: OPEN_OK.resume must be { id, secret, graceMs }');
    expect(refused(ctl(FrameType.OPEN_OK, 1, { resumed: 1 }))).toBe('link: OPEN_OK.resumed must be true or false');
  });

  it('OPEN_FAIL, CLOSE and GOAWAY carry an integer code and a string reason', () => {
    for (const [type, id, name] of [
      [FrameType.OPEN_FAIL, 1, 'OPEN_FAIL'],
      [FrameType.CLOSE, 1, 'CLOSE'],
      [FrameType.GOAWAY, 0, 'GOAWAY'],
    ] as const) {
      expect(refused(ctl(type, id, { reason: 'x' }))).toBe(`link: ${name}.code must be an integer from 0 to 65535`);
      expect(refused(ctl(type, id, { code: '1000' }))).toBe(`link: ${name}.code must be an integer from 0 to 65535`);
      expect(refused(ctl(type, id, { code: 70000 }))).toBe(`link: ${name}.code must be an integer from 0 to 65535`);
      expect(refused(ctl(type, id, { code: 1000, reason: 5 }))).toBe(`link: ${name}.reason must be a string`);
      expect(decodeFrame(ctl(type, id, { code: 4502 }))).toEqual({ type, sessionId: id, payload: { code: 4502, reason: '' } });
    }
  });
});
