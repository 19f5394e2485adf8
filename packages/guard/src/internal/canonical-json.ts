import { createHash } from 'node:crypto';
import { canonicalize } from '@switchboard/common';
import { GuardError } from '../errors.js';

/**
 * canonicalJson is RFC 8785 canonical JSON (`@switchboard/common`'s `canonicalize`) under the
 * guard's error contract: a value canonical JSON cannot hold — a cycle or nesting past the bound,
 * a non-finite number, a lone UTF-16 surrogate, a bigint, function or symbol — throws
 * `GUARD_ERR_NOT_JSON` instead of a `TypeError`. Two values equal as JSON, whatever their key
 * order, give the same text.
 */
export function canonicalJson(value: unknown): string {
  try {
    return canonicalize(value);
  } catch (err) {
    if (err instanceof TypeError) throw new GuardError('GUARD_ERR_NOT_JSON', err.message.replace(/^canonicaljson: /, 'canonical-json: '), { cause: err });
    throw err;
  }
}

/** sha256Hex returns the lowercase hex SHA-256 digest of `text` encoded as UTF-8. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
