import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from '@switchboard/common';
import { PolicyError, RelayError } from '../errors.js';
import type { PolicySnapshot } from '../policy/compile.js';
import { parsePolicyText } from '../policy/policy-text.js';
import type { PolicyStore } from '../policy/store.js';
import { PolicyFileWatcher } from './policy-file-watcher.js';

/** PolicyReloadResult reports a reload: the snapshot now in force, and the error if it failed. */
export type PolicyReloadResult = { ok: true; snapshot: PolicySnapshot } | { ok: false; snapshot: PolicySnapshot; error: RelayError };

async function readPolicy(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new PolicyError(`policy: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

/**
 * loadPolicyFile reads and compiles `policy.yaml`. Errors name the file, line and key path:
 * `policy: ./policy.yaml:7:9: rules[0].tools.allow: must be a list of strings, not a string`.
 */
export async function loadPolicyFile(path: string): Promise<PolicySnapshot> {
  return parsePolicyText(await readPolicy(path), path);
}

/**
 * PolicyFile is where the relay's policy comes from when it is a file: it re-reads the file and
 * swaps the new snapshot into the store (an invalid file is rejected and the old policy stays),
 * and watches the file so an edit reloads by itself. Concurrent reloads share one read.
 */
export class PolicyFile {
  readonly path: string;
  private readonly store: PolicyStore;
  private readonly logger: Logger;
  private reloading: Promise<PolicyReloadResult> | undefined;
  private readHash: string | undefined;
  private watcher: PolicyFileWatcher | undefined;

  constructor(path: string, store: PolicyStore, logger: Logger) {
    this.path = path;
    this.store = store;
    this.logger = logger;
  }

  /**
   * lastReadHash is the SHA-256 of the text the last reload read — valid or not — or of the file
   * the policy in force came from; the watcher skips a file it has already seen.
   */
  get lastReadHash(): string | undefined {
    return this.readHash ?? this.store.current.sourceHash;
  }

  /** reload re-reads the file and swaps it in; when it is invalid the old snapshot stays and the result carries the error. */
  reload(): Promise<PolicyReloadResult> {
    this.reloading ??= this.readAndSwap().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async readAndSwap(): Promise<PolicyReloadResult> {
    try {
      const text = await readPolicy(this.path);
      const hash = createHash('sha256').update(text).digest('hex');
      try {
        const next = parsePolicyText(text, this.path);
        this.store.swap(next);
        return { ok: true, snapshot: next };
      } finally {
        this.readHash = hash;
      }
    } catch (err) {
      const error = err instanceof RelayError ? err : new PolicyError(`policy: reload failed: ${String(err)}`, { cause: err });
      return { ok: false, snapshot: this.store.current, error };
    }
  }

  /** watch calls `onChange` (debounced) whenever the file's bytes change; a watch failure is logged (SIGHUP still reloads). */
  watch(onChange: () => void): void {
    const watcher = new PolicyFileWatcher(this.path, onChange, {
      currentHash: () => this.lastReadHash,
      onError: (err) => this.logger.warn({ err: err.message }, 'policy file watch failed; SIGHUP still reloads'),
    });
    try {
      watcher.start();
      this.watcher = watcher;
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, path: this.path }, 'cannot watch the policy file; SIGHUP still reloads');
    }
  }

  /** close stops watching. */
  close(): void {
    this.watcher?.close();
  }
}
