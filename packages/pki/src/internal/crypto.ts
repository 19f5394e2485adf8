import { createPrivateKey, createPublicKey, KeyObject, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
// @peculiar/x509 2.x needs a Reflect metadata polyfill loaded before it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

// @peculiar/x509 signs and verifies through WebCrypto; Node's implementation is native.
x509.cryptoProvider.set(webcrypto as never);

export const subtle = webcrypto.subtle;

/** The one key algorithm Switchboard issues: ECDSA P-256 with SHA-256. */
export const EC_P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
export const ECDSA_SHA256: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

export async function generateP256(): Promise<CryptoKeyPair> {
  return subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

/** toSigningKey converts a Node private key to the WebCrypto key @peculiar/x509 signs with. */
export async function toSigningKey(key: KeyObject): Promise<CryptoKey> {
  // A CA signs with the same key again and again: convert it once.
  const hit = signingKeys.get(key);
  if (hit) return hit;
  const der = key.export({ type: 'pkcs8', format: 'der' });
  const ck = await subtle.importKey('pkcs8', der, EC_P256, true, ['sign']);
  signingKeys.set(key, ck);
  return ck;
}

const signingKeys = new WeakMap<KeyObject, CryptoKey>();

/** toVerifyKey converts a Node public key to a WebCrypto key. */
export async function toVerifyKey(key: KeyObject): Promise<CryptoKey> {
  const der = key.export({ type: 'spki', format: 'der' });
  return subtle.importKey('spki', der, EC_P256, true, ['verify']);
}

export function cryptoKeyToKeyObject(key: CryptoKey): KeyObject {
  return KeyObject.from(key);
}

export function privateKeyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** parsePrivateKeyPem reads a PKCS#8 or SEC1 PEM key; throws when it is not an EC P-256 key. */
export function parsePrivateKeyPem(pem: string | Buffer): KeyObject {
  const key = createPrivateKey({ key: pem, format: 'pem' });
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new TypeError('key is not an ECDSA P-256 private key');
  }
  return key;
}

export function publicKeyOf(priv: KeyObject): KeyObject {
  return createPublicKey(priv);
}

export { x509 };
