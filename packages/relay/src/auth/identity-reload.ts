import { watch, type FSWatcher } from 'node:fs';
import { loadIdentityFiles, type BundleSource, type Identity, type TrustBundle, type TrustDomain } from '@switchboard/pki';

/**
 * CurrentBundle is the relay's trust bundle, swapped in place when the identity files rotate, so
 * the peer authenticator always validates against the bundle the TLS layer trusts.
 */
export class CurrentBundle implements BundleSource {
  private bundle: TrustBundle;

  constructor(bundle: TrustBundle) {
    this.bundle = bundle;
  }

  set(bundle: TrustBundle): void {
    this.bundle = bundle;
  }

  getBundle(td: TrustDomain): TrustBundle | undefined {
    return td.name === this.bundle.trustDomain.name ? this.bundle : undefined;
  }
}

/** tlsOptionsOf is the relay's one TLS configuration for an identity. */
export function tlsOptionsOf(identity: Identity) {
  return {
    key: identity.svid.privateKeyPem(),
    cert: identity.svid.certificatesPem(),
    ca: identity.bundle.toPem(),
    minVersion: 'TLSv1.3' as const,
    maxVersion: 'TLSv1.3' as const,
  };
}

/**
 * DirectoryWatch calls `onChange` (debounced) when anything in `dir` changes: files rotated in
 * place, written and renamed over, or a mounted Secret's symlink swap. A directory that cannot be
 * watched is reported through `onError`; the caller still has its manual reload (SIGHUP).
 */
export class DirectoryWatch {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dir: string,
    private readonly onChange: () => void,
    private readonly onError: (err: Error) => void,
    private readonly debounceMs = 200,
  ) {}

  start(): void {
    try {
      this.watcher = watch(this.dir, { persistent: false }, () => this.poke());
      this.watcher.on('error', (err) => this.onError(err));
    } catch (err) {
      this.onError(err as Error);
    }
  }

  private poke(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(this.onChange, this.debounceMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.close();
  }
}

/**
 * IdentityReloader re-reads the relay's identity directory when its files change (an SVID renewed
 * by `switchboard identity issue --force`, spiffe-helper, or a mounted Secret) and swaps the TLS
 * context and trust bundle for new connections; open connections keep theirs. A rotation to
 * another SPIFFE ID, or files that do not load, are refused and the current identity stays.
 */
export class IdentityReloader {
  private readonly watch: DirectoryWatch;
  private current: Identity;

  constructor(
    private readonly dir: string,
    initial: Identity,
    private readonly apply: (identity: Identity) => void,
    private readonly log: { info(o: object, m: string): void; warn(o: object, m: string): void },
    debounceMs = 200,
  ) {
    this.current = initial;
    this.watch = new DirectoryWatch(dir, () => void this.reload(), (err) => this.log.warn({ err: err.message, dir }, 'cannot watch the identity directory; restart the relay to rotate its SVID'), debounceMs);
  }

  /** identity is the identity in use now. */
  get identity(): Identity {
    return this.current;
  }

  /** start watches the directory; failures are logged (the relay keeps its identity). */
  start(): void {
    this.watch.start();
  }

  /** reload loads the directory now and applies it when it is a valid rotation. */
  async reload(): Promise<boolean> {
    let next: Identity;
    try {
      next = await loadIdentityFiles(this.dir);
    } catch (err) {
      // Mid-rotation (one file written, the next not yet) lands here; the next event retries.
      this.log.warn({ err: (err as Error).message }, 'relay identity files do not load; keeping the current identity');
      return false;
    }
    const to = Date.parse(next.svid.leaf.validTo);
    if (Date.now() >= to) {
      this.log.warn({ expired: new Date(to).toISOString() }, 'relay identity files hold an expired certificate; keeping the current identity');
      return false;
    }
    if (!next.svid.id.equals(this.current.svid.id)) {
      this.log.warn({ current: this.current.svid.id.toString(), found: next.svid.id.toString() }, 'relay identity files name another SPIFFE ID; keeping the current identity');
      return false;
    }
    if (next.svid.leaf.fingerprint256 === this.current.svid.leaf.fingerprint256 && next.bundle.toPem() === this.current.bundle.toPem()) return false;
    this.apply(next);
    this.current = next;
    this.log.info({ serial: next.svid.leaf.serialNumber, expires: next.svid.expiresAt.toISOString() }, 'relay identity rotated');
    return true;
  }

  close(): void {
    this.watch.close();
  }
}
