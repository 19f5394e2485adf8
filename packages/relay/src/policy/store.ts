import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PolicyError, RelayError } from '../errors.js';
import { YamlSyntaxError, parseYaml } from '../internal/yaml-file.js';
import type { SpiffeId } from '@switchboard/pki';
import { compilePolicy, type PolicySnapshot } from './compile.js';
import { PolicyScope } from './decide.js';

/** SCOPES_MAX bounds the shared scopes kept for the snapshot in force (cleared when full). */
const SCOPES_MAX = 4096;

/**
 * loadPolicyFile reads and compiles `policy.yaml`. Errors name the file, line and key path:
 * `policy: ./policy.yaml:7:9: rules[0].tools.allow: must be a list of strings, not a string`.
 */
export async function loadPolicyFile(path: string): Promise<PolicySnapshot> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new PolicyError(`policy: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  return parsePolicyText(text, path);
}

/** parsePolicyText parses and compiles policy YAML text; `source` names it in errors. */
export function parsePolicyText(text: string, source?: string): PolicySnapshot {
  let parsed;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    if (err instanceof YamlSyntaxError) {
      const where = `${source ?? 'policy'}${err.line ? `:${err.line}` : ''}`;
      throw new PolicyError(`policy: ${where}: not valid YAML: ${err.message}`, { ...(err.line ? { line: err.line } : {}), cause: err });
    }
    throw err;
  }
  return compilePolicy(parsed.value, { ...(source ? { source } : {}), text, locate: parsed.locate });
}

/** PolicyReloadResult reports a reload: the snapshot now in force, and the error if it failed. */
export type PolicyReloadResult = { ok: true; snapshot: PolicySnapshot } | { ok: false; snapshot: PolicySnapshot; error: RelayError };

/** PolicySwapListener is told about every swap, after the new snapshot is in force. */
export type PolicySwapListener = (next: PolicySnapshot, previous: PolicySnapshot) => void;

/**
 * PolicyValidator checks a compiled snapshot against what the running relay can do (a server
 * asking for identity to backends needs a JWT signer); it throws {@link PolicyError} to reject it.
 */
export type PolicyValidator = (snapshot: PolicySnapshot) => void;

/**
 * PolicyStore holds the snapshot in force. Readers take `store.current` (one field read, no
 * lock); `swap` replaces it atomically; `reload` re-reads the file and keeps the old snapshot when
 * the new file is invalid.
 *
 * @example
 * const store = await PolicyStore.fromFile('./policy.yaml');
 * process.on('SIGHUP', () => void store.reload());
 */
export class PolicyStore {
  private snapshot: PolicySnapshot;
  private readonly path: string | undefined;
  private readonly listeners = new Set<PolicySwapListener>();
  private reloading: Promise<PolicyReloadResult> | undefined;
  private validators: PolicyValidator[] = [];
  private readHash: string | undefined;
  private scopes = new Map<string, PolicyScope>();
  private scopesOf: PolicySnapshot | undefined;

  /** Creates a store holding `initial`; `path`, when given, is what {@link reload} re-reads. */
  constructor(initial: PolicySnapshot, path?: string) {
    this.snapshot = initial;
    this.path = path ?? initial.source;
  }

  /** PolicyStore.fromFile loads `path` and returns a store that reloads from it. */
  static async fromFile(path: string): Promise<PolicyStore> {
    return new PolicyStore(await loadPolicyFile(path), path);
  }

  /** current is the snapshot in force. */
  get current(): PolicySnapshot {
    return this.snapshot;
  }

  /**
   * scope returns the {@link PolicyScope} of `agent` on `server` under the snapshot in force,
   * shared by every session of that agent on that server: a scope depends on nothing else, is
   * immutable apart from its decision caches, and sharing it means the rules are selected and each
   * name decided once per agent and server instead of once per session (and an idle session holds
   * no scope of its own). A new snapshot starts a new set of scopes.
   */
  scope(agent: SpiffeId, server: string): PolicyScope {
    const snapshot = this.snapshot;
    if (this.scopesOf !== snapshot) {
      this.scopes = new Map();
      this.scopesOf = snapshot;
    }
    // Server names never hold a newline (SERVER_NAME_PATTERN), so the key is unambiguous.
    const key = `${server}\n${agent.toString()}`;
    let scope = this.scopes.get(key);
    if (scope === undefined) {
      scope = new PolicyScope(snapshot, agent, server);
      if (this.scopes.size >= SCOPES_MAX) this.scopes.clear();
      this.scopes.set(key, scope);
    }
    return scope;
  }

  /**
   * lastReadHash is the SHA-256 of the text the last reload read — valid or not — or of the file
   * the policy in force came from; a file watcher skips a file it has already seen.
   */
  get lastReadHash(): string | undefined {
    return this.readHash ?? this.snapshot.sourceHash;
  }

  /** sourcePath is the file {@link reload} reads, if any. */
  get sourcePath(): string | undefined {
    return this.path;
  }

  /**
   * addValidator registers a check every later snapshot must pass before it is swapped in (and
   * runs it on the current one, throwing when that fails). Returns a function that removes it.
   */
  addValidator(validator: PolicyValidator): () => void {
    validator(this.snapshot);
    this.validators.push(validator);
    return () => {
      this.validators = this.validators.filter((v) => v !== validator);
    };
  }

  /** swap validates `next`, puts it in force and notifies listeners; returns the previous snapshot. */
  swap(next: PolicySnapshot): PolicySnapshot {
    for (const v of this.validators) v(next);
    const previous = this.snapshot;
    this.snapshot = next;
    this.readHash = undefined;
    for (const l of this.listeners) {
      try {
        l(next, previous);
      } catch {
        // A listener's failure must not undo or block the swap.
      }
    }
    return previous;
  }

  /**
   * reload re-reads the policy file and swaps it in. When the file is invalid the old snapshot
   * stays in force and the result carries the error. Concurrent calls share one read.
   */
  reload(): Promise<PolicyReloadResult> {
    if (this.reloading) return this.reloading;
    const path = this.path;
    const run = async (): Promise<PolicyReloadResult> => {
      if (path === undefined) {
        return { ok: false, snapshot: this.snapshot, error: new PolicyError('policy: this policy was not loaded from a file; nothing to reload') };
      }
      try {
        let text: string;
        try {
          text = await readFile(path, 'utf8');
        } catch (err) {
          throw new PolicyError(`policy: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
        }
        const hash = createHash('sha256').update(text).digest('hex');
        let next: PolicySnapshot;
        try {
          next = parsePolicyText(text, path);
          this.swap(next);
        } finally {
          this.readHash = hash;
        }
        return { ok: true, snapshot: next };
      } catch (err) {
        const error = err instanceof RelayError ? err : new PolicyError(`policy: reload failed: ${String(err)}`, { cause: err });
        return { ok: false, snapshot: this.snapshot, error };
      }
    };
    this.reloading = run().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  /** onSwap registers `listener` for future swaps; returns a function that removes it. */
  onSwap(listener: PolicySwapListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
