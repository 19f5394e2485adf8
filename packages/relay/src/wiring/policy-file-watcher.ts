import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';

/** PolicyWatchOptions tune a {@link PolicyFileWatcher}. */
export interface PolicyWatchOptions {
  /** debounceMs is how long the file must stay quiet before a reload (default 200 ms). */
  debounceMs?: number;
  /** currentHash returns the SHA-256 of the policy in force, so an unchanged file is not reloaded. */
  currentHash?: () => string | undefined;
  /** onError hears about watch failures (the relay logs them; SIGHUP still works). */
  onError?: (err: Error) => void;
}

/**
 * PolicyFileWatcher calls `onChange` when the policy file changes. It watches the file's
 * directory — editors and config-management tools replace a file by writing a temporary one and
 * renaming it over the original, which a watch on the old inode never sees — and the file itself
 * (for in-place writes on platforms whose directory events miss them). Events are debounced; a
 * file whose bytes equal the policy in force (a `touch`, an editor's save without changes) does
 * not trigger a reload.
 */
export class PolicyFileWatcher {
  private readonly path: string;
  private readonly name: string;
  private readonly onChange: () => void;
  private readonly debounceMs: number;
  private readonly currentHash: (() => string | undefined) | undefined;
  private readonly onError: ((err: Error) => void) | undefined;
  private dirWatcher: FSWatcher | undefined;
  private fileWatcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(path: string, onChange: () => void, options: PolicyWatchOptions = {}) {
    this.path = resolve(path);
    this.name = basename(this.path);
    this.onChange = onChange;
    this.debounceMs = options.debounceMs ?? 200;
    this.currentHash = options.currentHash;
    this.onError = options.onError;
    if (!(this.debounceMs >= 0)) throw new TypeError('policy: debounceMs must be ≥ 0');
  }

  /** start begins watching; throws when the directory cannot be watched. */
  start(): void {
    this.dirWatcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
      if (file === null || String(file) === this.name) this.poke();
    });
    this.dirWatcher.on('error', (err) => this.onError?.(err));
    this.armFileWatch();
  }

  private armFileWatch(): void {
    this.fileWatcher?.close();
    this.fileWatcher = undefined;
    try {
      this.fileWatcher = watch(this.path, { persistent: false }, () => this.poke());
      this.fileWatcher.on('error', () => undefined);
    } catch {
      // The file is being replaced; the directory watch sees the new one.
    }
  }

  private poke(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.fire(), this.debounceMs);
    this.timer.unref();
  }

  private async fire(): Promise<void> {
    this.timer = undefined;
    if (this.closed) return;
    // A rename replaced the inode the file watch was on.
    this.armFileWatch();
    if (this.currentHash !== undefined) {
      try {
        const hash = createHash('sha256').update(await readFile(this.path, 'utf8')).digest('hex');
        if (hash === this.currentHash()) return;
      } catch {
        // Unreadable right now (mid-replace, deleted): let the reload report it.
      }
    }
    if (!this.closed) this.onChange();
  }

  /** close stops watching. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.dirWatcher?.close();
    this.fileWatcher?.close();
  }
}
