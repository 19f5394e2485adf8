import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { IDENTITY_FILES, loadIdentityFiles, writeIdentityFiles, type Identity, type IdMatcher, type SpiffeId } from '@switchboard/pki';
import { IdentityError, IdentityExpiredError } from '../errors.js';
import { RelayTls } from '@switchboard/protocol';
import { RelayUntrustedError } from '../errors.js';

/**
 * IdentitySource hands each dial the current {@link RelayTls}. Built from a directory, it re-reads
 * the files when they change (spiffe-helper or `switchboard identity issue` rotated them), so a
 * reconnect picks up a renewed SVID; otherwise the same secure context is reused.
 */
export class IdentitySource {
  private tls: RelayTls | undefined;
  private stamp = '';
  private readonly dir: string | undefined;
  private readonly relayId: IdMatcher | SpiffeId | string | undefined;
  private readonly resumption: boolean;
  private readonly now: () => number;

  constructor(identity: string | Identity, options: { relayId?: IdMatcher | SpiffeId | string | undefined; resumption?: boolean; now?: () => number } = {}) {
    this.relayId = options.relayId;
    this.resumption = options.resumption ?? true;
    this.now = options.now ?? Date.now;
    if (typeof identity === 'string') this.dir = identity;
    else this.tls = this.build(identity);
  }

  /** current returns the TLS material to dial with; throws {@link IdentityError} or {@link IdentityExpiredError}. */
  async current(): Promise<RelayTls> {
    if (this.dir !== undefined) {
      const stamp = await this.fileStamp(this.dir);
      if (!this.tls || stamp !== this.stamp) {
        let identity: Identity;
        try {
          identity = await loadIdentityFiles(this.dir);
        } catch (err) {
          throw new IdentityError(`cannot load ${this.dir}: ${(err as Error).message}`, { cause: err });
        }
        this.tls = this.build(identity);
        this.stamp = stamp;
      }
    }
    const tls = this.tls as RelayTls;
    checkValidity(tls.identity, this.now());
    return tls;
  }

  /** identity is the identity the last dial used (or the one given in memory). */
  get identity(): Identity | undefined {
    return this.tls?.identity;
  }

  /**
   * install puts a renewed identity in use for every later dial: written to the directory in the
   * spiffe-helper layout (each file atomically, the key first) when there is one, kept in memory
   * otherwise. Returns the new TLS material.
   */
  async install(identity: Identity): Promise<RelayTls> {
    const tls = this.build(identity);
    if (this.dir !== undefined) {
      await writeIdentityFiles(this.dir, identity, { force: true });
      this.stamp = await this.fileStamp(this.dir);
    }
    this.tls = tls;
    return tls;
  }

  private build(identity: Identity): RelayTls {
    try {
      return new RelayTls(identity, {
        relayId: this.relayId,
        resumption: this.resumption,
        untrusted: (message, cause) => new RelayUntrustedError(message, cause === undefined ? {} : { cause }),
      });
    } catch (err) {
      if (err instanceof TypeError) throw new IdentityError(err.message, { cause: err });
      throw err;
    }
  }

  private async fileStamp(dir: string): Promise<string> {
    const parts: string[] = [];
    for (const name of Object.values(IDENTITY_FILES)) {
      try {
        const s = await stat(join(dir, name));
        parts.push(`${s.ino}:${s.size}:${s.mtimeMs}`);
      } catch (err) {
        throw new IdentityError(`cannot read ${join(dir, name)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
      }
    }
    return parts.join('|');
  }
}

/** checkValidity refuses to dial with an SVID outside its validity period: the relay would refuse it anyway, less clearly. */
export function checkValidity(identity: Identity, nowMs: number): void {
  const leaf = identity.svid.leaf;
  const to = Date.parse(leaf.validTo);
  const from = Date.parse(leaf.validFrom);
  if (nowMs > to) {
    throw new IdentityExpiredError(`our certificate ${identity.svid.id.toString()} expired at ${new Date(to).toISOString()}; renew it (switchboard identity issue …)`);
  }
  if (nowMs < from) {
    throw new IdentityExpiredError(`our certificate ${identity.svid.id.toString()} is not valid before ${new Date(from).toISOString()}; check this host's clock`);
  }
}
