/**
 * The import graph of a package's sources, read with the TypeScript compiler's own import scanner
 * (type-only imports included: a type cycle is a cycle of concepts), and its cycles (Tarjan's
 * strongly connected components), per file and per folder ("room").
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** Graph maps each source file (relative to the package's src/) to the files it imports. */
export type Graph = Map<string, Set<string>>;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** importGraph reads every `.ts` file under `srcDir` and links its relative imports. */
export function importGraph(srcDir: string): Graph {
  const graph: Graph = new Map();
  for (const file of sourceFiles(srcDir)) {
    const from = relative(srcDir, file);
    const edges = new Set<string>();
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const target = relative(srcDir, resolve(dirname(file), ref.fileName.replace(/\.js$/, '.ts')));
      edges.add(target);
    }
    graph.set(from, edges);
  }
  return graph;
}

/** roomOf is the folder of a file (`session/agent-session.ts` → `session`; a top-level file is its own room). */
export function roomOf(file: string): string {
  const d = dirname(file);
  return d === '.' ? file : d.split('/')[0] as string;
}

/** roomGraph collapses a file graph onto rooms; edges inside a room are dropped. */
export function roomGraph(graph: Graph): Graph {
  const rooms: Graph = new Map();
  for (const [from, tos] of graph) {
    const r = roomOf(from);
    const set = rooms.get(r) ?? new Set<string>();
    for (const to of tos) if (roomOf(to) !== r) set.add(roomOf(to));
    rooms.set(r, set);
  }
  return rooms;
}

/** cycles returns every strongly connected component with more than one member (or a self-edge), sorted. */
export function cycles(graph: Graph): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v) as number, idx.get(w) as number));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v)?.has(v)) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}
