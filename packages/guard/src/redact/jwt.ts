import { anchoredDetector, isBase64Url, type Detector } from './detector.js';

/** A header longer than this is not decoded (real JOSE headers are a few hundred bytes). */
const MAX_HEADER_CHARS = 4096;

/**
 * isJoseHeader decodes the first part of a compact JWS/JWE and checks it is a JSON object with a
 * string `alg` — what separates a token from any other dotted base64url text.
 */
function isJoseHeader(token: string): boolean {
  const dot = token.indexOf('.');
  if (dot < 0 || dot > MAX_HEADER_CHARS) return false;
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8'));
  } catch {
    return false;
  }
  return typeof header === 'object' && header !== null && typeof (header as { alg?: unknown }).alg === 'string';
}

/**
 * jwtDetector finds JSON Web Tokens: compact JWS (`header.payload.signature`, signature possibly
 * empty) and JWE (five parts), whose header starts `eyJ` (base64url of `{"`) and decodes to a JSON
 * object with an `alg`. `eyJ` inside a longer base64url word is not a start.
 */
export const jwtDetector: Detector = anchoredDetector({
  kind: 'jwt',
  anchors: ['eyJ'],
  pattern: /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+)?(?![A-Za-z0-9_-])/,
  minLength: 10,
  notAfter: isBase64Url,
  validate(token) {
    // A three-part JWS needs a payload; a five-part JWE may have an empty encrypted key.
    const first = token.indexOf('.');
    const second = token.indexOf('.', first + 1);
    const isJwe = token.indexOf('.', second + 1) >= 0;
    if (!isJwe && second === first + 1) return false;
    return isJoseHeader(token);
  },
});
