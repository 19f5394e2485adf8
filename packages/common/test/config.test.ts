import { describe, expect, it } from 'vitest';
import {
  SchemaViolation,
  boolean,
  formatPath,
  integer,
  object,
  oneOf,
  parseYaml,
  record,
  string,
  stringList,
  unknownKeyRule,
  validate,
  YamlSyntaxError,
  type PathSegment,
} from '../src/config/index.js';

function violation(fn: () => unknown): { path: string; rule: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SchemaViolation);
    const v = err as SchemaViolation;
    return { path: formatPath(v.path), rule: v.rule };
  }
  throw new Error('accepted');
}

const server = object({ command: string(), args: stringList().optional(), env: record(string({ allowEmpty: true })).optional() });
const doc = object({
  servers: record(server),
  port: integer(1, 65535).optional(),
  strict: boolean().optional(),
  mode: oneOf(['a', 'b'], (v) => `must be a or b, not ${JSON.stringify(v)}`).optional(),
});

describe('validate: the first broken rule, at its key path', () => {
  it.each<[string, unknown, string, string]>([
    ['a misspelt key, with the key meant', { servers: { crm: { comand: 'x' } } }, 'servers.crm.comand', 'unknown key (allowed here: command, args, env; did you mean "command"?)'],
    ['a transposition is a near miss too', { servers: { crm: { command: 'x', agrs: [] } } }, 'servers.crm.agrs', 'unknown key (allowed here: command, args, env; did you mean "args"?)'],
    ['a key far from every allowed one gets no hint', { servers: {}, listen: 1 }, 'listen', 'unknown key (allowed here: servers, port, strict, mode)'],
    ['a missing key', { servers: { crm: { args: [] } } }, 'servers.crm.command', 'is required'],
    ['a missing section', {}, 'servers', 'is required'],
    ['a list where a string belongs', { servers: { crm: { command: ['x'] } } }, 'servers.crm.command', 'must be a string, not a list'],
    ['an empty string', { servers: { crm: { command: '' } } }, 'servers.crm.command', 'must not be empty'],
    ['a number in a list of strings', { servers: { crm: { command: 'x', args: ['a', 3] } } }, 'servers.crm.args[1]', 'must be a string, not a number'],
    ['a map value of the wrong type', { servers: { crm: { command: 'x', env: { A: true } } } }, 'servers.crm.env.A', 'must be a string, not a boolean'],
    ['a scalar where a mapping belongs', { servers: 'crm' }, 'servers', 'must be a mapping, not a string'],
    ['the document itself', ['x'], '(root)', 'must be a mapping, not a list'],
    ['an integer out of range', { servers: {}, port: 70000 }, 'port', 'must be between 1 and 65535'],
    ['a fraction', { servers: {}, port: 1.5 }, 'port', 'must be an integer, not a number'],
    ['a quoted number', { servers: {}, port: '80' }, 'port', 'must be an integer, not a string'],
    ['not a boolean', { servers: {}, strict: 'yes' }, 'strict', 'must be true or false, not a string'],
    ['not one of the choices', { servers: {}, mode: 'c' }, 'mode', 'must be a or b, not "c"'],
    ['a choice of the wrong type', { servers: {}, mode: null }, 'mode', 'must be a string, not null'],
  ])('%s', (_label, input, path, rule) => {
    expect(violation(() => validate(doc, input))).toEqual({ path, rule });
  });

  it('reports an unknown key before the missing key it probably caused', () => {
    // Zod lists "command is required" first; the operator's mistake is the typo.
    expect(violation(() => validate(server, { comand: 'node' })).path).toBe('comand');
  });

  it('prefixes the path of a section validated on its own', () => {
    expect(violation(() => validate(server, { command: 1 }, ['servers', 'crm']))).toEqual({ path: 'servers.crm.command', rule: 'must be a string, not a number' });
  });

  it('returns the parsed value', () => {
    expect(validate(doc, { servers: { crm: { command: 'node', args: ['a'] } }, port: 8443 })).toEqual({ servers: { crm: { command: 'node', args: ['a'] } }, port: 8443 });
  });

  it('hints only for near misses, case-insensitively', () => {
    expect(unknownKeyRule('Listen', ['listen', 'policy'])).toBe('unknown key (allowed here: listen, policy; did you mean "listen"?)');
    expect(unknownKeyRule('id', ['ids', 'serials'])).toBe('unknown key (allowed here: ids, serials; did you mean "ids"?)');
    // Two edits would turn "a" into anything short: no hint where the key is shorter than the distance.
    expect(unknownKeyRule('x', ['id'])).toBe('unknown key (allowed here: id)');
  });
});

describe('parseYaml', () => {
  const text = 'servers:\n  crm:\n    command: node\n    comand: x\nrules:\n  - id: a\n    tools: { allow: [x] }\n';

  it.each<[PathSegment[], { line: number; col: number }]>([
    [['servers', 'crm', 'comand'], { line: 4, col: 5 }],
    [['servers', 'crm'], { line: 2, col: 3 }],
    [['rules', 0, 'tools', 'allow'], { line: 7, col: 14 }],
    [['rules', 0, 'tools', 'deny'], { line: 7, col: 12 }],
  ])('locates %j (the key itself; a missing key: its mapping)', (path, pos) => {
    expect(parseYaml(text).locate(path)).toEqual(pos);
  });

  it.each([
    ['a duplicate key', 'a: 1\na: 2\n', 2],
    ['an unclosed flow sequence', 'a: [1\n', 2],
  ])('refuses %s with its line', (_label, bad, line) => {
    let err: unknown;
    try {
      parseYaml(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(YamlSyntaxError);
    expect((err as YamlSyntaxError).line).toBe(line);
  });
});
