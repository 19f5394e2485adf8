/**
 * A regular-expression matcher that runs in time linear in its input, for patterns that policy
 * authors write (argument constraints). JavaScript's own engine backtracks: `^(a+)+$` or
 * `^.*a.*b.*c.*d$` take seconds to minutes on a few thousand characters, and a length cap does
 * not save it. This one compiles the pattern to an NFA and simulates every thread at once (Pike /
 * Thompson), so a match costs O(input × program) whatever the pattern.
 *
 * The syntax is JavaScript's with the `u` flag, minus what needs backtracking: backreferences and
 * lookaround assertions are refused. Supported: literals and escapes, `.`, classes (ranges,
 * negation, `\d \w \s \D \W \S`, `\p{…}`), groups (capturing, non-capturing, named — all just
 * grouping here), `|`, `* + ? {n} {n,} {n,m}` (greedy or lazy — the same for a yes/no answer),
 * `^ $ \b \B`. Matching is a search (`RegExp.prototype.test` semantics): anchor with `^…$`.
 */

import {
  A_END,
  A_START,
  A_WORD,
  LinearRegexError,
  compileSet,
  isWordCp,
  parseRegex,
  type CharTest,
  type Node,
} from './regex-parse.js';

export { LinearRegexError } from './regex-parse.js';

const MAX_PROGRAM = 20_000;

// Program ------------------------------------------------------------------------------------

const OP_SET = 0;
const OP_SPLIT = 1;
const OP_JMP = 2;
const OP_ASSERT = 3;
const OP_MATCH = 4;

interface Program {
  op: number[];
  x: number[];
  y: number[];
  sets: (CharTest | undefined)[];
}

function size(n: Node): number {
  switch (n.t) {
    case 'set':
    case 'assert':
      return 1;
    case 'empty':
      return 0;
    case 'cat':
      return n.items.reduce((a, b) => a + size(b), 0);
    case 'alt':
      return n.items.reduce((a, b) => a + size(b) + 2, 0);
    case 'rep': {
      const s = size(n.node);
      return n.max === Infinity ? s * n.min + s + 2 : s * n.max + (n.max - n.min);
    }
  }
}

class Emitter {
  readonly p: Program = { op: [], x: [], y: [], sets: [] };

  private add(op: number, x = 0, y = 0, set?: CharTest): number {
    this.p.op.push(op);
    this.p.x.push(x);
    this.p.y.push(y);
    this.p.sets.push(set);
    return this.p.op.length - 1;
  }

  emit(n: Node): void {
    switch (n.t) {
      case 'set':
        this.add(OP_SET, 0, 0, compileSet(n.set));
        return;
      case 'assert':
        this.add(OP_ASSERT, n.kind);
        return;
      case 'empty':
        return;
      case 'cat':
        for (const item of n.items) this.emit(item);
        return;
      case 'alt': {
        const jumps: number[] = [];
        for (let k = 0; k < n.items.length; k++) {
          if (k < n.items.length - 1) {
            const split = this.add(OP_SPLIT);
            this.p.x[split] = split + 1;
            this.emit(n.items[k] as Node);
            jumps.push(this.add(OP_JMP));
            this.p.y[split] = this.p.op.length;
          } else this.emit(n.items[k] as Node);
        }
        for (const j of jumps) this.p.x[j] = this.p.op.length;
        return;
      }
      case 'rep': {
        for (let k = 0; k < n.min; k++) this.emit(n.node);
        if (n.max === Infinity) {
          const split = this.add(OP_SPLIT);
          this.p.x[split] = split + 1;
          this.emit(n.node);
          this.add(OP_JMP, split);
          this.p.y[split] = this.p.op.length;
          return;
        }
        const splits: number[] = [];
        for (let k = n.min; k < n.max; k++) {
          const split = this.add(OP_SPLIT);
          this.p.x[split] = split + 1;
          splits.push(split);
          this.emit(n.node);
        }
        for (const s of splits) this.p.y[s] = this.p.op.length;
        return;
      }
    }
  }
}

/**
 * LinearRegex is a compiled pattern. `test(s)` answers like `new RegExp(source, 'u').test(s)`, in
 * O(|s| × program size) steps.
 */
export class LinearRegex {
  readonly source: string;
  private readonly prog: Program;
  private readonly anchoredStart: boolean;
  private marks: Uint32Array;
  private gen = 0;
  private clist: Int32Array;
  private nlist: Int32Array;
  private readonly stack: Int32Array;

  private constructor(source: string, prog: Program, anchoredStart: boolean) {
    this.source = source;
    this.prog = prog;
    this.anchoredStart = anchoredStart;
    const n = prog.op.length;
    this.marks = new Uint32Array(n);
    this.clist = new Int32Array(n);
    this.nlist = new Int32Array(n);
    this.stack = new Int32Array(n * 2 + 2);
  }

  /**
   * LinearRegex.compile parses `source`; throws {@link LinearRegexError} naming the rule when the
   * pattern is invalid JavaScript (`u` flag), uses a feature that needs backtracking, or is too
   * large once its repetitions are expanded.
   */
  static compile(source: string): LinearRegex {
    try {
      new RegExp(source, 'u');
    } catch (err) {
      throw new LinearRegexError(`does not compile: ${(err as Error).message}`);
    }
    const ast = parseRegex(source);
    if (size(ast) > MAX_PROGRAM) throw new LinearRegexError(`too large once repetitions are expanded (over ${MAX_PROGRAM} steps)`);
    const e = new Emitter();
    e.emit(ast);
    e.p.op.push(OP_MATCH);
    e.p.x.push(0);
    e.p.y.push(0);
    e.p.sets.push(undefined);
    return new LinearRegex(source, e.p, startsAnchored(ast));
  }

  private add(list: Int32Array, count: number, start: number, pos: number, len: number, prev: number, cur: number): number {
    const { op, x, y } = this.prog;
    const marks = this.marks;
    const gen = this.gen;
    const stack = this.stack;
    let sp = 0;
    stack[sp++] = start;
    while (sp > 0) {
      const pc = stack[--sp] as number;
      if (marks[pc] === gen) continue;
      marks[pc] = gen;
      switch (op[pc]) {
        case OP_JMP:
          stack[sp++] = x[pc] as number;
          break;
        case OP_SPLIT:
          stack[sp++] = y[pc] as number;
          stack[sp++] = x[pc] as number;
          break;
        case OP_ASSERT: {
          const k = x[pc];
          const ok =
            k === A_START
              ? pos === 0
              : k === A_END
                ? pos === len
                : ((prev >= 0 && isWordCp(prev)) !== (cur >= 0 && isWordCp(cur))) === (k === A_WORD);
          if (ok) stack[sp++] = pc + 1;
          break;
        }
        default:
          list[count++] = pc;
      }
    }
    return count;
  }

  private nextGen(): void {
    if (++this.gen === 0xffffffff) {
      this.marks.fill(0);
      this.gen = 1;
    }
  }

  /** test reports whether the pattern matches somewhere in `input`. */
  test(input: string): boolean {
    const { op, sets } = this.prog;
    const len = input.length;
    let pos = 0;
    let cur = len > 0 ? (input.codePointAt(0) as number) : -1;
    this.nextGen();
    let ccount = this.add(this.clist, 0, 0, 0, len, -1, cur);
    for (;;) {
      const clist = this.clist;
      for (let k = 0; k < ccount; k++) if (op[clist[k] as number] === OP_MATCH) return true;
      if (pos >= len) return false;
      if (ccount === 0 && this.anchoredStart) return false;
      const width = cur > 0xffff ? 2 : 1;
      const npos = pos + width;
      const next = npos < len ? (input.codePointAt(npos) as number) : -1;
      this.nextGen();
      const nlist = this.nlist;
      let ncount = 0;
      for (let k = 0; k < ccount; k++) {
        const pc = clist[k] as number;
        if (op[pc] === OP_SET && (sets[pc] as CharTest)(cur)) ncount = this.add(nlist, ncount, pc + 1, npos, len, cur, next);
      }
      if (!this.anchoredStart) ncount = this.add(nlist, ncount, 0, npos, len, cur, next);
      this.nlist = clist;
      this.clist = nlist;
      ccount = ncount;
      cur = next;
      pos = npos;
    }
  }
}

/** startsAnchored is true when every path through the pattern begins with `^`. */
function startsAnchored(n: Node): boolean {
  switch (n.t) {
    case 'assert':
      return n.kind === A_START;
    case 'cat':
      return n.items.length > 0 && startsAnchored(n.items[0] as Node);
    case 'alt':
      return n.items.every(startsAnchored);
    case 'rep':
      return n.min > 0 && startsAnchored(n.node);
    default:
      return false;
  }
}
