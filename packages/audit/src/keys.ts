import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { canonicalize, existingFiles, writeFileAtomic } from '@switchboard/common';
import { sha256Hex } from './chain.js';
import { AuditError } from './errors.js';

/** AUDIT_KEY_FILES are the file names of the checkpoint signing key pair (PKCS#8 and SPKI PEM). */
export const AUDIT_KEY_FILES = Object.freeze({ privateKey: 'audit_key.pem', publicKey: 'audit_pub.pem' });

/** auditKeyId returns the key id of a raw 32-byte Ed25519 public key: the first 16 hex digits of its SHA-256. */
export function auditKeyId(rawPublicKey: Uint8Array): string {
  return sha256Hex(rawPublicKey).slice(0, 16);
}

/**
 * checkpointMessage returns the bytes a checkpoint signs: the canonical JSON of `{ seq, hash }`
 * of the record it covers, e.g. `{"hash":"ab…","seq":1000}`.
 */
export function checkpointMessage(seq: number, hash: string): Uint8Array {
  return Buffer.from(canonicalize({ seq, hash }), 'utf8');
}

/**
 * AuditPublicKey verifies checkpoint signatures. Make one with {@link loadAuditPublicKey} or
 * {@link AuditPublicKey.fromPem}.
 */
export class AuditPublicKey {
  /** keyId names the key in checkpoints ({@link auditKeyId}). */
  readonly keyId: string;
  /** raw is the 32-byte Ed25519 public key. */
  readonly raw: Uint8Array;

  private constructor(raw: Uint8Array) {
    this.raw = raw;
    this.keyId = auditKeyId(raw);
  }

  /** AuditPublicKey.fromPem reads an SPKI PEM (`audit_pub.pem`) or the public half of a PKCS#8 PEM. */
  static fromPem(pem: string): AuditPublicKey {
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch (err) {
      throw new AuditError('AUDIT_ERR_KEY_INVALID', 'audit: not a PEM public key', { cause: err });
    }
    return new AuditPublicKey(rawFromJwk(key, 'x'));
  }

  /** AuditPublicKey.fromRaw wraps a raw 32-byte Ed25519 public key. */
  static fromRaw(raw: Uint8Array): AuditPublicKey {
    if (raw.length !== 32) throw new TypeError('audit: an Ed25519 public key is 32 bytes');
    return new AuditPublicKey(Uint8Array.from(raw));
  }

  /** verify checks a base64url checkpoint signature over `{ seq, hash }`. */
  verify(seq: number, hash: string, sig: string): boolean {
    const bytes = Buffer.from(sig, 'base64url');
    if (bytes.length !== 64 || bytes.toString('base64url') !== sig) return false;
    try {
      // zip215: false — the strict RFC 8032 rules, so one signature has one valid encoding.
      return ed25519.verify(bytes, checkpointMessage(seq, hash), this.raw, { zip215: false });
    } catch {
      return false;
    }
  }
}

/**
 * AuditSigningKey signs checkpoints. Make one with {@link loadAuditSigningKey} or
 * {@link AuditSigningKey.fromPem}; the secret never appears in `toJSON` or `inspect` output.
 */
export class AuditSigningKey {
  /** publicKey is the matching verification key. */
  readonly publicKey: AuditPublicKey;
  readonly #secret: Uint8Array;

  private constructor(secret: Uint8Array) {
    this.#secret = secret;
    this.publicKey = AuditPublicKey.fromRaw(ed25519.getPublicKey(secret));
  }

  /** keyId names the key in checkpoints. */
  get keyId(): string {
    return this.publicKey.keyId;
  }

  /** AuditSigningKey.fromPem reads a PKCS#8 PEM Ed25519 private key (`audit_key.pem`). */
  static fromPem(pem: string): AuditSigningKey {
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch (err) {
      throw new AuditError('AUDIT_ERR_KEY_INVALID', 'audit: not a PEM private key', { cause: err });
    }
    const signing = new AuditSigningKey(rawFromJwk(key, 'd'));
    if (Buffer.compare(Buffer.from(signing.publicKey.raw), Buffer.from(rawFromJwk(key, 'x'))) !== 0) {
      throw new AuditError('AUDIT_ERR_KEY_INVALID', 'audit: private key does not match its public half');
    }
    return signing;
  }

  /** sign returns the base64url Ed25519 signature of the checkpoint message for `{ seq, hash }`. */
  sign(seq: number, hash: string): string {
    return Buffer.from(ed25519.sign(checkpointMessage(seq, hash), this.#secret)).toString('base64url');
  }

  toJSON(): { keyId: string } {
    return { keyId: this.keyId };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `AuditSigningKey { keyId: '${this.keyId}' }`;
  }
}

/** AuditKeyPem is a freshly generated checkpoint key pair. */
export interface AuditKeyPem {
  /** privateKeyPem is PKCS#8 PEM; store it as `audit_key.pem`, mode 0600. */
  privateKeyPem: string;
  /** publicKeyPem is SPKI PEM; give it to verifiers as `audit_pub.pem`. */
  publicKeyPem: string;
  keyId: string;
}

/**
 * generateAuditKey creates an Ed25519 key pair for checkpoint signatures. `openssl genpkey
 * -algorithm ed25519` makes an equivalent private key.
 *
 * @example
 * const key = generateAuditKey();
 * await writeAuditKeyFiles('./pki', key);
 */
export function generateAuditKey(): AuditKeyPem {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    keyId: auditKeyId(rawFromJwk(publicKey, 'x')),
  };
}

/**
 * writeAuditKeyFiles writes `audit_key.pem` (mode 0600) and `audit_pub.pem` (0644) into `dir`,
 * each atomically (temporary file, fsync, rename). Refuses to replace existing files unless
 * `force` is set.
 */
export async function writeAuditKeyFiles(dir: string, key: AuditKeyPem, options: { force?: boolean } = {}): Promise<{ privateKeyPath: string; publicKeyPath: string }> {
  const privateKeyPath = join(dir, AUDIT_KEY_FILES.privateKey);
  const publicKeyPath = join(dir, AUDIT_KEY_FILES.publicKey);
  if (options.force !== true) {
    // Both are checked before either is written, so a refusal leaves nothing half-replaced.
    const [found] = await existingFiles([privateKeyPath, publicKeyPath]);
    if (found !== undefined) throw new AuditError('AUDIT_ERR_FILE_EXISTS', `audit: ${found} exists (use --force to replace it)`);
  }
  await writeFileAtomic(privateKeyPath, key.privateKeyPem, { mode: 0o600, createDir: false });
  await writeFileAtomic(publicKeyPath, key.publicKeyPem, { mode: 0o644, createDir: false });
  return { privateKeyPath, publicKeyPath };
}

/** loadAuditSigningKey reads a PKCS#8 PEM Ed25519 private key file (`audit_key.pem`). */
export async function loadAuditSigningKey(path: string): Promise<AuditSigningKey> {
  return AuditSigningKey.fromPem(await readKeyFile(path));
}

/** loadAuditPublicKey reads an SPKI PEM Ed25519 public key file (`audit_pub.pem`); a private key file also works. */
export async function loadAuditPublicKey(path: string): Promise<AuditPublicKey> {
  return AuditPublicKey.fromPem(await readKeyFile(path));
}

async function readKeyFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new AuditError('AUDIT_ERR_KEY_INVALID', `audit: cannot read key file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

function rawFromJwk(key: KeyObject, part: 'd' | 'x'): Uint8Array {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new AuditError('AUDIT_ERR_KEY_INVALID', `audit: checkpoint keys are Ed25519, got ${key.asymmetricKeyType ?? key.type}`);
  }
  const jwk = key.export({ format: 'jwk' });
  const v = jwk[part];
  if (typeof v !== 'string') throw new AuditError('AUDIT_ERR_KEY_INVALID', `audit: key has no \`${part}\``);
  const raw = Buffer.from(v, 'base64url');
  if (raw.length !== 32) throw new AuditError('AUDIT_ERR_KEY_INVALID', 'audit: Ed25519 key is not 32 bytes');
  return new Uint8Array(raw);
}
