import { describe, expect, it } from 'vitest';
import { compileArgConstraints, type ArgCheck, type ToolArgsSpec } from '../../src/args/constraints.js';
import { GuardError } from '../../src/errors.js';

function specError(spec: unknown, options?: { where?: string }): { code: string; path: string; message: string } {
  try {
    compileArgConstraints(spec as ToolArgsSpec, options);
  } catch (err) {
    if (err instanceof GuardError) return { code: err.code, path: err.path, message: err.message };
    return { code: `not a GuardError: ${String(err)}`, path: '', message: '' };
  }
  return { code: 'no error', path: '', message: '' };
}

function outcome(r: ArgCheck): string {
  return r.ok ? 'ok' : `${r.argument}:${r.constraint}`;
}

describe('glob (paths) — as for server-filesystem read_file', () => {
  const c = compileArgConstraints({ path: { glob: ['/srv/data/**', '/tmp/agent/*.txt'], required: true } });
  it.each([
    ['/srv/data/report.csv', 'ok'],
    ['/srv/data', 'ok'],
    ['/srv/data/2024/q1/report.csv', 'ok'],
    ['/srv/data/./x/../report.csv', 'ok'],
    ['//srv//data//report.csv', 'ok'],
    ['/tmp/agent/notes.txt', 'ok'],
    ['/srv/data/../etc/passwd', 'path:glob'],
    ['/srv/data/x/../../../etc/shadow', 'path:glob'],
    ['/srv/data/../../../../../../etc/passwd', 'path:glob'],
    ['/../srv/data/x', 'path:glob'],
    ['/srv/database/x', 'path:glob'],
    ['/srv/data\\..\\..\\etc\\passwd', 'path:glob'],
    ['srv/data/x', 'path:glob'],
    ['./srv/data/x', 'path:glob'],
    ['/srv/data/x\0/../../etc/passwd', 'path:glob'],
    ['/tmp/agent/sub/notes.txt', 'path:glob'],
    ['/tmp/agent/notes.txt.sh', 'path:glob'],
    // Percent-encoding is not decoded: "%2e%2e" is a directory literally named so, inside /srv/data…
    ['/srv/data/%2e%2e/%2e%2e/etc/passwd', 'ok'],
    // …and it cannot smuggle a path outside the allowed root either.
    ['/%2e%2e/srv/data/x', 'path:glob'],
    // Symlink-looking names are matched as written; resolving links is the server sandbox's job.
    ['/srv/data/link-to-etc/passwd', 'ok'],
    ['/srv/data/..', 'path:glob'],
    ['/srv/data/...', 'ok'],
    ['/srv/data/ファイル.csv', 'ok'],
    ['/srv/dаta/x', 'path:glob'], // Cyrillic а: a different directory
  ])('%s → %s', (path, expected) => {
    expect(outcome(c.check({ path }))).toBe(expected);
  });

  it('refuses an absent required path and non-strings', () => {
    expect(c.check({})).toEqual({ ok: false, argument: 'path', constraint: 'required', reason: 'argument "path" is required but absent (required)' });
    expect(outcome(c.check({ path: 42 }))).toBe('path:glob');
    expect(outcome(c.check({ path: ['/srv/data/x'] }))).toBe('path:glob');
    expect(outcome(c.check({ path: null }))).toBe('path:glob');
  });

  it('names the argument, the rule and why in the reason', () => {
    expect(c.check({ path: '/srv/data/../etc/passwd' })).toEqual({
      ok: false,
      argument: 'path',
      constraint: 'glob',
      reason: 'argument "path" is outside /srv/data/**, /tmp/agent/*.txt (glob)',
    });
    expect(c.check({ path: '/../x' })).toMatchObject({ reason: 'argument "path" climbs above the root (glob)' });
  });
});

describe('regex', () => {
  const c = compileArgConstraints({ ticket: { regex: '^[A-Z]{2,5}-[0-9]{1,6}$' }, query: { regex: 'ORDER' } });
  it.each([
    [{ ticket: 'OPS-42' }, 'ok'],
    [{ ticket: 'ops-42' }, 'ticket:regex'],
    [{ ticket: 'OPS-42\n; DROP TABLE' }, 'ticket:regex'],
    [{ ticket: 'OPS-1234567' }, 'ticket:regex'],
    [{ ticket: 42 }, 'ticket:regex'],
    [{ query: 'find ORDER 7' }, 'ok'], // unanchored: a search, as written
    [{ query: 'find order 7' }, 'query:regex'],
    [{}, 'ok'],
  ])('%j → %s', (args, expected) => {
    expect(outcome(c.check(args))).toBe(expected);
  });

  it('caps the input a pattern examines', () => {
    const capped = compileArgConstraints({ q: { regex: '^a*$' } }, { regexInputMax: 10 });
    expect(outcome(capped.check({ q: 'aaaaaaaaaa' }))).toBe('ok');
    expect(capped.check({ q: 'aaaaaaaaaaa' })).toMatchObject({ ok: false, constraint: 'regex', reason: 'argument "q" is longer than the 10 characters a pattern examines (regex)' });
  });

  it('patterns that make backtracking engines explode get their answer (RE2)', () => {
    const c2 = compileArgConstraints({ a: { regex: '^(a+)+$' }, b: { regex: '^.*a.*b.*c.*d$' }, c: { regex: '^(\\w+\\s?)*$' } });
    expect(outcome(c2.check({ a: `${'a'.repeat(4000)}!` }))).toBe('a:regex');
    expect(outcome(c2.check({ b: 'abc'.repeat(1300) }))).toBe('b:regex');
    expect(outcome(c2.check({ c: `${'word '.repeat(800)}!` }))).toBe('c:regex');
    expect(outcome(c2.check({ a: 'a'.repeat(4000), b: `${'abc'.repeat(1300)}d`, c: 'word '.repeat(800) }))).toBe('ok');
  });

  it('unicode: a pattern sees code points', () => {
    const u = compileArgConstraints({ name: { regex: '^.{3}$' }, emoji: { regex: '^\\p{So}+$' } });
    expect(outcome(u.check({ name: 'a😀b' }))).toBe('ok');
    expect(outcome(u.check({ emoji: '😀🎉' }))).toBe('ok');
    expect(outcome(u.check({ emoji: '😀x' }))).toBe('emoji:regex');
  });
});

describe('enum', () => {
  const c = compileArgConstraints({
    mode: { enum: ['read', 'list'] },
    level: { enum: [1, 2, 3] },
    flag: { enum: [true, null] },
    filter: { enum: [{ status: 'open', mine: true }, ['a', 'b']] },
  });
  it.each([
    [{ mode: 'read' }, 'ok'],
    [{ mode: 'write' }, 'mode:enum'],
    [{ mode: 'READ' }, 'mode:enum'],
    [{ mode: 'read ' }, 'mode:enum'],
    [{ level: 2 }, 'ok'],
    [{ level: '2' }, 'level:enum'],
    [{ level: 2.5 }, 'level:enum'],
    [{ flag: true }, 'ok'],
    [{ flag: null }, 'ok'],
    [{ flag: 'true' }, 'flag:enum'],
    [{ filter: { mine: true, status: 'open' } }, 'ok'],
    [{ filter: { status: 'open' } }, 'filter:enum'],
    [{ filter: { status: 'open', mine: true, extra: 1 } }, 'filter:enum'],
    [{ filter: ['a', 'b'] }, 'ok'],
    [{ filter: ['b', 'a'] }, 'filter:enum'],
    [{ filter: 'a' }, 'filter:enum'],
  ])('%j → %s', (args, expected) => {
    expect(outcome(c.check(args))).toBe(expected);
  });
});

describe('max', () => {
  const c = compileArgConstraints({ text: { max: 5 }, limit: { max: 100 } });
  it.each([
    [{ text: 'hello' }, 'ok'],
    [{ text: 'hello!' }, 'text:max'],
    [{ text: '😀😀😀😀😀' }, 'ok'], // five code points (ten UTF-16 units)
    [{ text: '😀😀😀😀😀😀' }, 'text:max'],
    [{ text: 'e\u0301e\u0301e' }, 'ok'], // five code points
    [{ limit: 100 }, 'ok'],
    [{ limit: 100.5 }, 'limit:max'],
    [{ limit: -1e9 }, 'ok'],
    [{ limit: '1000' }, 'ok'], // a string: its length (4) is what counts
    [{ limit: '1234567890'.repeat(11) }, 'limit:max'],
    [{ limit: true }, 'limit:max'],
    [{ limit: [1, 2] }, 'limit:max'],
  ])('%j → %s', (args, expected) => {
    expect(outcome(c.check(args))).toBe(expected);
  });
});

describe('check', () => {
  const c = compileArgConstraints({
    path: { glob: '/data/**', required: true, max: 200 },
    mode: { enum: ['r'] },
  });

  it('reports the first failure, in spec order', () => {
    expect(outcome(c.check({ path: '/etc/passwd', mode: 'w' }))).toBe('path:glob');
    expect(outcome(c.check({ path: '/data/x', mode: 'w' }))).toBe('mode:enum');
    expect(outcome(c.check({ path: `/data/${'x'.repeat(300)}` }))).toBe('path:max');
  });

  it('absent arguments are fine unless required; unconstrained ones pass', () => {
    expect(outcome(c.check({ path: '/data/x', other: '/etc/passwd' }))).toBe('ok');
    expect(outcome(compileArgConstraints({ mode: { enum: ['r'] } }).check(undefined))).toBe('ok');
    expect(outcome(c.check(undefined))).toBe('path:required');
  });

  it('only own properties count', () => {
    const proto = compileArgConstraints({ constructor: { required: true }, toString: { enum: ['x'] } });
    expect(outcome(proto.check({}))).toBe('constructor:required');
    expect(outcome(proto.check(JSON.parse('{"constructor":1}')))).toBe('ok');
    const inherited = Object.create({ path: '/data/x' }) as object;
    expect(outcome(c.check(inherited))).toBe('path:required');
  });

  it('refuses arguments that are not an object', () => {
    for (const bad of ['x', 1, true, ['/data/x']]) expect(c.check(bad)).toMatchObject({ ok: false, argument: '', constraint: 'arguments' });
  });

  it('an allowed call returns the shared frozen result', () => {
    const r = c.check({ path: '/data/x' });
    expect(r).toBe(c.check({ path: '/data/y', mode: 'r' }));
    expect(Object.isFrozen(r)).toBe(true);
    expect(c.names).toEqual(['path', 'mode']);
  });
});

describe('compileArgConstraints refuses bad specs at load', () => {
  it.each([
    [{ path: { globb: '/data/**' } }, 'path.globb'],
    [{ path: {} }, 'path'],
    [{ path: 'glob' }, 'path'],
    [{ '': { max: 1 } }, ''],
    [{ path: { glob: 'data/**' } }, 'path.glob'],
    [{ path: { glob: ['/ok/**', '/data/../etc'] } }, 'path.glob[1]'],
    [{ path: { glob: [] } }, 'path.glob'],
    [{ path: { glob: '/data/a**' } }, 'path.glob'],
    [{ path: { glob: [42] } }, 'path.glob[0]'],
    [{ q: { regex: '([a-z]' } }, 'q.regex'],
    [{ q: { regex: '(a)\\1' } }, 'q.regex'],
    [{ q: { regex: '(?<=a)b' } }, 'q.regex'],
    [{ q: { regex: 'a(?=b)' } }, 'q.regex'],
    [{ q: { regex: '\\k<n>(?<n>a)' } }, 'q.regex'],
    [{ q: { regex: '(a{1000}){1000}' } }, 'q.regex'],
    [{ q: { regex: 'x'.repeat(1025) } }, 'q.regex'],
    [{ q: { regex: 42 } }, 'q.regex'],
    [{ q: { enum: [] } }, 'q.enum'],
    [{ q: { enum: 'a' } }, 'q.enum'],
    [{ q: { enum: [Infinity] } }, 'q.enum[0]'],
    [{ q: { max: '10' } }, 'q.max'],
    [{ q: { max: NaN } }, 'q.max'],
    [{ q: { required: 'yes' } }, 'q.required'],
  ])('%j → %s', (spec, path) => {
    const e = specError(spec, { where: 'rules[0].args.read_file' });
    expect(e.code).toBe('GUARD_ERR_ARG_SPEC');
    expect(e.path).toBe(`rules[0].args.read_file.${path}`);
    expect(e.message.startsWith(`args: rules[0].args.read_file.${path}: `)).toBe(true);
  });

  it('messages name the rule', () => {
    expect(specError({ q: { regex: '(a)\\1' } }).message).toBe('args: q.regex: backreferences (\\1 … \\9) are not supported (patterns run on RE2, which matches in linear time)');
    expect(specError({ q: { regex: '([a-z]' } }).message).toMatch(/^args: q\.regex: does not compile: /);
    expect(specError({ p: { glob: '/data/../etc' } }).message).toBe('args: p.glob: glob "/data/../etc" must not contain . or .. segments');
  });
});
