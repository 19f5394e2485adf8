import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@switchboard/common';

/**
 * How `switchboard tools approve` reaches a running relay. The relay's pin store is the source of
 * truth in memory and is written back by the relay; a second writer of the same file would lose
 * changes. So while a relay holds the store (it writes `<pins>.lock` with its pid), approvals are
 * *requests*: the CLI drops `<pins>.requests/<id>.json`, the relay applies it to its store (which
 * writes the file), answers with `<id>.result`, and tells the affected sessions that their tool
 * list changed. Without a live relay the CLI edits the file itself. Who may approve is who may
 * write the directory of the pin file.
 */

/** PinLock is what `<pins>.lock` holds: which process owns the store. */
export interface PinLock {
  pid: number;
  host: string;
  startedAt: string;
}

/** ApprovalRequest asks the relay to approve pending definitions (all of a server's when `tools` is null). */
export interface ApprovalRequest {
  op: 'approve';
  server: string;
  tools: string[] | null;
  /** by names who approved, for the audit trail. */
  by: string;
}

/** ApprovalResult is the relay's answer. */
export type ApprovalResult =
  | { ok: true; approved: { tool: string; hash: string; previousHash: string | null }[] }
  | { ok: false; error: string };

/** lockPath is the lock file of the pin store at `pins`. */
export function lockPath(pins: string): string {
  return `${pins}.lock`;
}

/** spoolDir is the request directory of the pin store at `pins`. */
export function spoolDir(pins: string): string {
  return `${pins}.requests`;
}


/** readLock returns the lock of the pin store at `pins`, or undefined when there is none (or it is unreadable). */
export async function readLock(pins: string): Promise<PinLock | undefined> {
  try {
    const v = JSON.parse(await readFile(lockPath(pins), 'utf8')) as Partial<PinLock>;
    if (typeof v.pid !== 'number' || typeof v.host !== 'string') return undefined;
    return { pid: v.pid, host: v.host, startedAt: String(v.startedAt ?? '') };
  } catch {
    return undefined;
  }
}

/**
 * lockHolderAlive reports whether the process named by `lock` still runs. A lock from another
 * host cannot be checked and counts as alive.
 */
export function lockHolderAlive(lock: PinLock): boolean {
  if (lock.host !== hostname()) return true;
  if (lock.pid === process.pid) return true;
  try {
    process.kill(lock.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** takeLock writes the lock for this process (replacing a stale one) and creates the spool directory. */
export async function takeLock(pins: string): Promise<void> {
  await mkdir(spoolDir(pins), { recursive: true, mode: 0o700 });
  const lock: PinLock = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  await writeFileAtomic(lockPath(pins), `${JSON.stringify(lock)}\n`, { mode: 0o644 });
}

/** releaseLock removes the lock when this process holds it. */
export async function releaseLock(pins: string): Promise<void> {
  const lock = await readLock(pins);
  if (lock !== undefined && lock.pid === process.pid && lock.host === hostname()) await rm(lockPath(pins), { force: true });
}

/** submitRequest drops an approval request for the relay and returns its id. */
export async function submitRequest(pins: string, req: ApprovalRequest): Promise<string> {
  const id = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
  await writeFileAtomic(join(spoolDir(pins), `${id}.json`), `${JSON.stringify(req)}\n`, { mode: 0o600, createDir: false });
  return id;
}

/** awaitResult waits (polling) for the relay's answer to request `id`; undefined after `timeoutMs`. */
export async function awaitResult(pins: string, id: string, timeoutMs: number, pollMs = 50): Promise<ApprovalResult | undefined> {
  const path = join(spoolDir(pins), `${id}.result`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const result = JSON.parse(await readFile(path, 'utf8')) as ApprovalResult;
      await rm(path, { force: true });
      return result;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (Date.now() >= deadline) {
      // Withdraw the request so a relay that starts later does not apply a stale approval.
      await rm(join(spoolDir(pins), `${id}.json`), { force: true });
      return undefined;
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

const MAX_REQUEST_BYTES = 64 * 1024;

/** takeRequests reads and removes the pending requests (oldest first); malformed ones are answered with an error. */
export async function takeRequests(pins: string): Promise<{ id: string; request: ApprovalRequest | undefined; error?: string }[]> {
  let names: string[];
  try {
    names = await readdir(spoolDir(pins));
  } catch {
    return [];
  }
  const out: { id: string; request: ApprovalRequest | undefined; error?: string }[] = [];
  for (const name of names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort()) {
    const id = name.slice(0, -'.json'.length);
    const path = join(spoolDir(pins), name);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
      await rm(path, { force: true });
    } catch {
      continue;
    }
    out.push(parseRequest(id, text));
  }
  return out;
}

function parseRequest(id: string, text: string): { id: string; request: ApprovalRequest | undefined; error?: string } {
  if (text.length > MAX_REQUEST_BYTES) return { id, request: undefined, error: 'request too large' };
  try {
    const v = JSON.parse(text) as Partial<ApprovalRequest>;
    const tools = v.tools;
    if (v.op !== 'approve' || typeof v.server !== 'string' || typeof v.by !== 'string') throw new TypeError('not an approval request');
    if (tools !== null && (!Array.isArray(tools) || !tools.every((t) => typeof t === 'string'))) throw new TypeError('tools must be a list of names or null');
    return { id, request: { op: 'approve', server: v.server, tools: tools ?? null, by: v.by.slice(0, 256) } };
  } catch (err) {
    return { id, request: undefined, error: (err as Error).message };
  }
}

/** answerRequest writes the relay's answer to request `id`. */
export async function answerRequest(pins: string, id: string, result: ApprovalResult): Promise<void> {
  await writeFileAtomic(join(spoolDir(pins), `${id}.result`), `${JSON.stringify(result)}\n`, { mode: 0o600, createDir: false });
}
