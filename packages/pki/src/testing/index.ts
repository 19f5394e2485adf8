import { type KeyObject } from 'node:crypto';
import { CertificateAuthority, leafSpec, newP256Key } from '../ca.js';
import { buildCertificate, type CertSpec } from '../internal/cert-builder.js';
import { publicKeyOf } from '../internal/crypto.js';
import { writeIdentityFiles } from '../identity-files.js';
import { SpiffeId, TrustDomain } from '../spiffe-id.js';
import { BundleSet, TrustBundle } from '../trust-bundle.js';
import { X509Svid } from '../x509-svid.js';

/**
 * TestIssueOptions bend an X509-SVID out of shape on purpose, so tests can prove each rule is
 * enforced. Without options the SVID is exactly what the real CA issues.
 */
export interface TestIssueOptions {
  ttlSeconds?: number;
  now?: Date;
  /** expired makes a certificate whose validity ended an hour ago. */
  expired?: boolean;
  /** notYetValid makes a certificate that becomes valid in an hour. */
  notYetValid?: boolean;
  /** uris replaces the URI SANs (`[]` for none, two entries for two). */
  uris?: string[];
  /** ca sets basicConstraints cA (a leaf claiming to be a CA). */
  ca?: boolean;
  /** keyUsage replaces the key usage flags; `null` omits the extension. */
  keyUsage?: number | null;
  keyUsageCritical?: boolean;
  /** eku replaces the extended key usages; `null` omits the extension. */
  eku?: string[] | null;
  /** signedBy 'root' skips the intermediate: the leaf is signed by the root directly. */
  signedBy?: 'intermediate' | 'root';
  /** key certifies this private key instead of a fresh one. */
  key?: KeyObject;
}

/** TestCA is a throwaway CA with real certificates, for tests in every package. */
export interface TestCA {
  readonly trustDomain: TrustDomain;
  readonly ca: CertificateAuthority;
  readonly bundle: TrustBundle;
  /** bundles is a BundleSet with just this CA's bundle. */
  readonly bundles: BundleSet;
  /** bundlePem is `bundle.pem`'s content: the root certificate. */
  readonly bundlePem: string;
  /** issue mints an X509-SVID for `id`, well-formed or broken per `options`. */
  issue(id: string | SpiffeId, options?: TestIssueOptions): Promise<X509Svid>;
  /** writeIdentity writes `svid.pem`, `svid_key.pem` and `bundle.pem` into `dir`. */
  writeIdentity(dir: string, svid: X509Svid): Promise<void>;
}

/**
 * createTestCA makes a throwaway CA for `trustDomain` (default `example.org`).
 *
 * @example
 * const ca = await createTestCA({ trustDomain: 'example.org' });
 * const agent = await ca.issue('spiffe://example.org/agent/a');
 * const expired = await ca.issue('spiffe://example.org/agent/a', { expired: true });
 */
export async function createTestCA(options: { trustDomain?: string; now?: Date } = {}): Promise<TestCA> {
  const ca = await CertificateAuthority.create({ trustDomain: options.trustDomain ?? 'example.org', ...(options.now ? { now: options.now } : {}) });
  const bundle = ca.bundle();
  const rootKey = (ca as unknown as { rootKey: KeyObject }).rootKey;
  const intermediateKey = (ca as unknown as { intermediateKey: KeyObject }).intermediateKey;

  async function issue(id: string | SpiffeId, o: TestIssueOptions = {}): Promise<X509Svid> {
    const uris = o.uris ?? [typeof id === 'string' ? id : id.toString()];
    const plain = Object.keys(o).every((k) => k === 'ttlSeconds' || k === 'now');
    if (plain) return ca.issueX509Svid(id, { ...(o.ttlSeconds ? { ttlSeconds: o.ttlSeconds } : {}), ...(o.now ? { now: o.now } : {}) });
    const key = o.key ?? newP256Key();
    const now = (o.now ?? new Date()).getTime();
    const ttl = (o.ttlSeconds ?? 3600) * 1000;
    let notBefore = new Date(now - 30_000);
    let notAfter = new Date(now + ttl);
    if (o.expired) {
      notBefore = new Date(now - 2 * 3600_000);
      notAfter = new Date(now - 3600_000);
    }
    if (o.notYetValid) {
      notBefore = new Date(now + 3600_000);
      notAfter = new Date(now + 2 * 3600_000);
    }
    // Start from the real leaf content, then bend it.
    const sid = typeof id === 'string' ? SpiffeId.parse(id) : id;
    const spec: CertSpec = { ...leafSpec(sid, publicKeyOf(key), notBefore, notAfter), uris };
    if (o.ca !== undefined) spec.basicConstraints = { ca: o.ca };
    if (o.keyUsage === null) spec.keyUsage = undefined;
    else if (o.keyUsage !== undefined || o.keyUsageCritical !== undefined) {
      spec.keyUsage = { flags: o.keyUsage ?? (spec.keyUsage?.flags as number), critical: o.keyUsageCritical ?? true };
    }
    if (o.eku === null) spec.eku = undefined;
    else if (o.eku !== undefined) spec.eku = o.eku;
    const byRoot = o.signedBy === 'root';
    const leaf = await buildCertificate(spec, {
      certificate: byRoot ? ca.rootCertificate : ca.intermediateCertificate,
      privateKey: byRoot ? rootKey : intermediateKey,
    });
    return new X509Svid(sid, byRoot ? [leaf] : [leaf, ca.intermediateCertificate], key);
  }

  return {
    trustDomain: ca.trustDomain,
    ca,
    bundle,
    bundles: new BundleSet([bundle]),
    bundlePem: bundle.toPem(),
    issue,
    writeIdentity: (dir, svid) => writeIdentityFiles(dir, { svid, bundle }, { force: true }),
  };
}

export { startWorkloadApiServer } from './workload-api-server.js';
export type { TestWorkloadApiServer } from './workload-api-server.js';
