import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Document, type Node } from 'yaml';
import type { PathSegment } from './violation.js';

/** YamlSource is a parsed YAML document plus a way to find where a key path sits in the text. */
export interface YamlSource {
  readonly value: unknown;
  /** locate returns the 1-based line and column of the value (or key) at `path`, when found. */
  locate(path: readonly PathSegment[]): { line: number; col: number } | undefined;
}

/** YamlSyntaxError is a YAML document that does not parse; `line` is 1-based. */
export class YamlSyntaxError extends Error {
  readonly line: number | undefined;
  constructor(message: string, line: number | undefined) {
    super(message);
    this.name = 'YamlSyntaxError';
    this.line = line;
  }
}

/** parseYaml parses one YAML document strictly (unique keys, no multi-document streams). */
export function parseYaml(text: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true, strict: true });
  const first = doc.errors[0];
  if (first) {
    const pos = first.linePos?.[0];
    throw new YamlSyntaxError((first.message.split('\n')[0] ?? first.message).replace(/ at line \d+, column \d+:?$/, ''), pos?.line);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new YamlSyntaxError((err as Error).message, undefined);
  }
  return { value, locate: (path) => locateIn(doc, lineCounter, path) };
}

/** readYamlFile reads and parses a YAML file; read errors are thrown as they come (ENOENT, …). */
export async function readYamlFile(path: string): Promise<YamlSource> {
  return parseYaml(await readFile(path, 'utf8'));
}

function locateIn(doc: Document, lc: LineCounter, path: readonly PathSegment[]): { line: number; col: number } | undefined {
  let node: unknown = doc.contents;
  let at: Node | undefined = doc.contents ?? undefined;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
      if (!pair) break;
      // Point at the key: for an unknown key that is the line to fix.
      at = (isScalar(pair.key) ? pair.key : undefined) ?? at;
      node = pair.value;
      if (pair.value && (isMap(pair.value) || isSeq(pair.value) || isScalar(pair.value))) {
        if (seg !== path[path.length - 1]) at = pair.value as Node;
      }
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (!item) break;
      node = item;
      if (isMap(item) || isSeq(item) || isScalar(item)) at = item as Node;
    } else {
      break;
    }
  }
  const offset = at?.range?.[0];
  return offset === undefined ? undefined : lc.linePos(offset);
}
