import type { Logger } from '@switchboard/common';
import type { AuditFs, AuditUnavailableError } from '@switchboard/audit';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DEFAULT_SVID_TTL_SECONDS, EnrollmentTokenVerifier, FileUsedTokenStore, PkiError, SvidIssuer, loadIdentityFiles, loadJwtSvidSigner, type Identity, type JwtSvidSigner, type UsedTokenStore } from '@switchboard/pki';
import type { EnrollmentSetting, RenewalSetting } from '../config/renewal-config.js';
import type { RenewalOptions } from '../listener/renew.js';
import type { JwtSignerOptions, PinsOptions } from '../config/enforcement-config.js';
import { openRelayAudit, policyReloadRecord, type RelayAuditOptions } from '../audit/open.js';
import { auditMetricsOf } from '../audit/metrics.js';
import type { AuditSink } from '../audit/sink.js';
import { outOfSpace } from '../audit/trail-sink.js';
import { Enforcement } from '../enforce/enforcement.js';
import { PinRuntime } from '../enforce/pin-runtime.js';
import { RelayError } from '../errors.js';
import type { RelayMetrics } from '../metrics.js';
import { PolicySnapshot, compilePolicy } from '../policy/compile.js';
import type { PolicyDocument } from '../policy/document.js';
import { PolicyStore } from '../policy/store.js';
import type { Cleanup } from './cleanup.js';
import { PolicyFile, loadPolicyFile } from './policy-file.js';

/**
 * The steps of `startRelay` that open one part each. Each throws a {@link RelayError} naming what
 * is wrong; what it opened is released by the caller's cleanup.
 */

/**
 * loadRelayIdentity loads the relay's identity directory (or takes a loaded identity) and refuses
 * one outside its validity period: every agent and connector would refuse it, less clearly (a
 * relay that logs "listening" and then fails every handshake). Throws `RELAY_ERR_IDENTITY`.
 */
export async function loadRelayIdentity(identity: string | Identity, nowMs: number = Date.now()): Promise<Identity> {
  let loaded: Identity;
  if (typeof identity !== 'string') loaded = identity;
  else {
    try {
      loaded = await loadIdentityFiles(identity);
    } catch (err) {
      const detail = err instanceof PkiError ? `${err.code}: ${err.message}` : String(err);
      throw new RelayError('RELAY_ERR_IDENTITY', `identity: cannot load the relay identity from ${identity}: ${detail}`, { cause: err });
    }
  }
  const invalid = validityProblem(loaded, nowMs);
  if (invalid !== undefined) {
    const from = typeof identity === 'string' ? ` (${identity})` : '';
    throw new RelayError('RELAY_ERR_IDENTITY', `identity: the relay's certificate ${loaded.svid.id.toString()}${from} ${invalid}`);
  }
  return loaded;
}

/** validityProblem says why `identity`'s certificate is not usable at `nowMs` (expired, not yet valid), if it is not. */
export function validityProblem(identity: Identity, nowMs: number): string | undefined {
  const leaf = identity.svid.leaf;
  const to = Date.parse(leaf.validTo);
  const from = Date.parse(leaf.validFrom);
  if (nowMs >= to) return `expired at ${new Date(to).toISOString()}; renew it (switchboard identity issue --force …) and start the relay again`;
  if (nowMs < from) return `is not valid before ${new Date(from).toISOString()}; check this host's clock`;
  return undefined;
}

/**
 * openRenewal loads the issuer the relay renews SVIDs with, when configured. The issuer must serve
 * the relay's own trust domain. Throws `RELAY_ERR_CONFIG` naming `renewal.issuer`.
 */
export async function openRenewal(renewal: RenewalSetting | undefined, identity: Identity): Promise<RenewalOptions> {
  if (renewal === undefined) return { issuer: undefined, ttlSeconds: DEFAULT_SVID_TTL_SECONDS };
  let issuer: SvidIssuer;
  if (typeof renewal.issuer === 'string') {
    try {
      issuer = await SvidIssuer.load(renewal.issuer);
    } catch (err) {
      const detail = err instanceof PkiError ? `${err.code}: ${err.message}` : String(err);
      throw new RelayError('RELAY_ERR_CONFIG', `config: renewal.issuer: ${detail}`, { cause: err });
    }
  } else issuer = renewal.issuer;
  const td = identity.svid.id.trustDomain.name;
  if (issuer.trustDomain.name !== td) {
    throw new RelayError('RELAY_ERR_CONFIG', `config: renewal.issuer: the issuer serves trust domain ${issuer.trustDomain.name}, the relay ${td}`);
  }
  return { issuer, ttlSeconds: renewal.ttlSeconds ?? DEFAULT_SVID_TTL_SECONDS };
}

/**
 * openEnrollment builds the token verifier of the enrollment listener: the CA's enrollment public
 * key and the used-token store (a file, so a token stays spent across restarts). Needs an issuer.
 * Throws `RELAY_ERR_CONFIG` naming the key.
 */
export function openEnrollment(enrollment: EnrollmentSetting, renewal: RenewalOptions, identity: Identity, publicKeyPem: string | undefined): { verifier: EnrollmentTokenVerifier; store: UsedTokenStore } {
  if (renewal.issuer === undefined) throw new RelayError('RELAY_ERR_CONFIG', 'config: enrollment: needs renewal.issuer: enrolled workloads get their SVID from the same issuer');
  let publicKey: KeyObject;
  try {
    publicKey = typeof enrollment.publicKey === 'string' ? createPublicKey(publicKeyPem as string) : enrollment.publicKey;
  } catch (err) {
    throw new RelayError('RELAY_ERR_CONFIG', `config: enrollment.publicKey: ${enrollment.publicKey as string} is not a PEM key (${(err as Error).message})`, { cause: err });
  }
  let store: UsedTokenStore;
  try {
    store = typeof enrollment.usedTokens === 'string' ? FileUsedTokenStore.open(enrollment.usedTokens) : enrollment.usedTokens;
  } catch (err) {
    throw new RelayError('RELAY_ERR_CONFIG', `config: enrollment.usedTokens: ${(err as Error).message}`, { cause: err });
  }
  try {
    return { verifier: new EnrollmentTokenVerifier({ trustDomain: identity.svid.id.trustDomain, publicKey, store }), store };
  } catch (err) {
    throw new RelayError('RELAY_ERR_CONFIG', `config: enrollment.publicKey: ${(err as Error).message}`, { cause: err });
  }
}

/** readKeyFile reads a PEM file named by relay.yaml; throws `RELAY_ERR_CONFIG` naming the key. */
export async function readKeyFile(path: string, key: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new RelayError('RELAY_ERR_CONFIG', `config: ${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

/** OpenedPolicy is the store the relay decides with and, when the policy is a file, where reloads read it. */
export interface OpenedPolicy {
  store: PolicyStore;
  file: PolicyFile | undefined;
}

/**
 * openPolicy builds the store from a policy.yaml path, a document, a snapshot or a store to
 * share, and checks it is the relay's trust domain; throws `RELAY_ERR_POLICY`.
 */
export async function openPolicy(policy: string | PolicyDocument | PolicySnapshot | PolicyStore, identity: Identity, logger: Logger): Promise<OpenedPolicy> {
  let opened: OpenedPolicy;
  if (policy instanceof PolicyStore) opened = { store: policy, file: undefined };
  else if (policy instanceof PolicySnapshot) opened = { store: new PolicyStore(policy), file: undefined };
  else if (typeof policy === 'string') {
    const store = new PolicyStore(await loadPolicyFile(policy));
    opened = { store, file: new PolicyFile(policy, store, logger) };
  } else opened = { store: new PolicyStore(compilePolicy(policy)), file: undefined };
  const relayTd = identity.svid.id.trustDomain.name;
  const policyTd = opened.store.current.trustDomain.name;
  if (policyTd !== relayTd) {
    throw new RelayError('RELAY_ERR_POLICY', `policy: trustDomain is ${policyTd}, but the relay's identity ${identity.svid.id.toString()} is in ${relayTd}`);
  }
  return opened;
}

/** EnforcementOptions are the relay options `openEnforcement` reads. */
export interface EnforcementParts {
  pins?: PinsOptions | undefined;
  jwtSigner?: JwtSignerOptions | JwtSvidSigner | undefined;
  /** replicas divides the rate limits (relay.yaml enforcement.replicas). */
  replicas?: number;
}

/**
 * openEnforcement builds the relay-wide enforcement: the JWT-SVID signer (validated), the pin
 * store, and the policy check that needs the signer. Throws `RELAY_ERR_CONFIG` (or the policy's
 * `RELAY_ERR_POLICY` when the policy in force asks for what the relay cannot do).
 */
export async function openEnforcement(
  parts: EnforcementParts,
  store: PolicyStore,
  trustDomain: string,
  deps: { audit: AuditSink; metrics: RelayMetrics; logger: Logger },
): Promise<Enforcement> {
  let signer: JwtSvidSigner | undefined;
  let ttl: number | undefined;
  const j = parts.jwtSigner;
  if (j !== undefined && 'sign' in j) {
    signer = j;
  } else if (j !== undefined) {
    try {
      signer = await loadJwtSvidSigner(j.key, { trustDomain, ...(j.keyId !== undefined ? { keyId: j.keyId } : {}) });
    } catch (err) {
      const detail = err instanceof PkiError ? `${err.code}: ${err.message}` : String(err);
      throw new RelayError('RELAY_ERR_CONFIG', `config: jwtSigner.key: ${detail}`, { cause: err });
    }
    ttl = j.ttlSeconds;
  }
  const pins = await PinRuntime.open(parts.pins, { ...deps, logger: deps.logger.child({ component: 'pins' }) });
  const enforcement = new Enforcement({ policy: store, pins, ...deps, ...(signer ? { signer } : {}), ...(ttl !== undefined ? { jwtTtlSeconds: ttl } : {}), ...(parts.replicas !== undefined ? { replicas: parts.replicas } : {}) });
  try {
    enforcement.enforceOn();
  } catch (err) {
    await enforcement.close();
    throw err;
  }
  return enforcement;
}

/** openAudit opens the trail (or takes the given sink) and records the policy in force at start. */
export async function openAudit(
  options: RelayAuditOptions | { sink: AuditSink },
  policyFile: PolicyFile | undefined,
  metrics: RelayMetrics,
  logger: Logger,
  fs: AuditFs | undefined,
  cleanup: Cleanup,
): Promise<AuditSink> {
  const opened = await openRelayAudit(options, {
    logger,
    ...(fs ? { fs } : {}),
    onFailure: (err) =>
      logger.error(
        { err: err.message },
        outOfSpace(err as AuditUnavailableError)
          ? 'audit trail is out of space: every recorded call is refused (-32050) and /readyz reports 503; the trail reopens by itself once space returns'
          : 'audit trail failed: every recorded call is refused (-32050) and /readyz reports 503 until the relay is restarted',
      ),
    onRecovered: () => logger.warn({}, 'audit trail reopened: space returned; recorded calls are accepted again'),
    onBatch: (b) => {
      metrics.auditWrite.observe(b.writeSeconds);
      if (b.syncSeconds !== null) metrics.auditSync.observe(b.syncSeconds);
    },
  });
  const audit = opened.sink;
  // A sink the caller passed in is theirs to close; the relay only flushes it.
  cleanup.add('audit trail', () => (opened.owned ? audit.close() : audit.flush()));
  metrics.audit = auditMetricsOf(audit);
  // The policy in force at start is recorded like a reload, so the trail says which file governed.
  if (policyFile !== undefined) audit.write(await policyReloadRecord(policyFile.path, null));
  return audit;
}
