import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cycles, importGraph, roomGraph, type Graph } from './import-graph.js';

const ROOT = join(import.meta.dirname, '..', '..');
// The workspace's packages: folders whose package.json names them @switchboard/<folder>. (The image
// test's `pnpm deploy`, running at the same time, briefly leaves a folder of its own there.)
const PACKAGES = readdirSync(join(ROOT, 'packages'))
  .filter((dir) => {
    try {
      return (JSON.parse(readFileSync(join(ROOT, 'packages', dir, 'package.json'), 'utf8')) as { name?: string }).name === `@switchboard/${dir}`;
    } catch {
      return false;
    }
  })
  .sort();

describe('no import cycle inside a package', () => {
  it('finds the packages', () => {
    expect(PACKAGES).toEqual(['agent-sdk', 'audit', 'cli', 'common', 'connector', 'guard', 'pki', 'protocol', 'relay']);
  });

  it.each(PACKAGES)('%s: no file imports one that imports it back (type imports included)', (pkg) => {
    expect(cycles(importGraph(join(ROOT, 'packages', pkg, 'src')))).toEqual([]);
  });

  it.each(PACKAGES)('%s: no folder imports one that imports it back', (pkg) => {
    expect(cycles(roomGraph(importGraph(join(ROOT, 'packages', pkg, 'src'))))).toEqual([]);
  });

  it('the checker finds a cycle when there is one', () => {
    const g: Graph = new Map([
      ['a/x.ts', new Set(['b/y.ts'])],
      ['b/y.ts', new Set(['a/z.ts'])],
      ['a/z.ts', new Set<string>()],
      ['c.ts', new Set(['c.ts'])],
    ]);
    expect(cycles(g)).toEqual([['c.ts']]);
    expect(cycles(roomGraph(g))).toEqual([['a', 'b']]);
  });
});
