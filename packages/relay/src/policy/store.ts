import type { PolicySnapshot } from './compile.js';
import type { PolicySubject } from './decide.js';
import { IdentityPolicy, PolicyScope } from './scope.js';

/** SCOPES_MAX bounds the shared scopes kept for the snapshot in force (cleared when full). */
const SCOPES_MAX = 4096;

/** PolicySwapListener is told about every swap, after the new snapshot is in force. */
export type PolicySwapListener = (next: PolicySnapshot, previous: PolicySnapshot) => void;

/**
 * PolicyValidator checks a compiled snapshot against what the running relay can do (a server
 * asking for identity to backends needs a JWT signer); it throws a `PolicyError` to reject it.
 */
export type PolicyValidator = (snapshot: PolicySnapshot) => void;

/**
 * PolicyStore holds the snapshot in force and hands out the decision values built from it.
 * Readers take `store.current` (one field read, no lock); `swap` replaces it atomically after
 * every validator accepted it. It does no I/O: where a snapshot comes from (a file, a reload on
 * SIGHUP or on change) is the relay's wiring.
 *
 * @example
 * const store = new PolicyStore(parsePolicyText(text, 'policy.yaml'));
 * const scope = store.scope(peer, 'crm');
 * scope.session.allow; scope.tool('get_order').allow;
 */
export class PolicyStore {
  private snapshot: PolicySnapshot;
  private readonly listeners = new Set<PolicySwapListener>();
  private validators: PolicyValidator[] = [];
  private scopes = new Map<string, PolicyScope>();
  private scopesOf: PolicySnapshot | undefined;

  /** Creates a store holding `initial`. */
  constructor(initial: PolicySnapshot) {
    this.snapshot = initial;
  }

  /** current is the snapshot in force. */
  get current(): PolicySnapshot {
    return this.snapshot;
  }

  /** identity returns the {@link IdentityPolicy} of `subject` under the snapshot in force (revocation, connector grants). */
  identity(subject: PolicySubject): IdentityPolicy {
    return new IdentityPolicy(this.snapshot, subject);
  }

  /**
   * scope returns the {@link PolicyScope} of `subject` on `server` under the snapshot in force,
   * shared by every session of that subject — same SPIFFE ID, same certificate serial — on that
   * server: a scope depends on nothing else, is immutable apart from its decision caches, and
   * sharing it means the rules are selected and each name decided once per identity and server
   * instead of once per session (and an idle session holds no scope of its own). A new snapshot
   * starts a new set of scopes.
   */
  scope(subject: PolicySubject, server: string): PolicyScope {
    const snapshot = this.snapshot;
    if (this.scopesOf !== snapshot) {
      this.scopes = new Map();
      this.scopesOf = snapshot;
    }
    // Neither a server name nor a SPIFFE ID holds a newline, so the key is unambiguous.
    const key = `${server}\n${subject.id.toString()}\n${subject.certSerial ?? ''}`;
    let scope = this.scopes.get(key);
    if (scope === undefined) {
      scope = new PolicyScope(snapshot, subject, server);
      if (this.scopes.size >= SCOPES_MAX) this.scopes.clear();
      this.scopes.set(key, scope);
    }
    return scope;
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
    for (const l of this.listeners) {
      try {
        l(next, previous);
      } catch {
        // A listener's failure must not undo or block the swap.
      }
    }
    return previous;
  }

  /** onSwap registers `listener` for future swaps; returns a function that removes it. */
  onSwap(listener: PolicySwapListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
