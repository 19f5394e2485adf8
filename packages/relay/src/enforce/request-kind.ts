import { Methods, methodIs } from '../message/jsonrpc.js';
import { spanString, type MessageShape } from '../message/strict-json.js';

/**
 * Request kinds the relay tracks until their response: what to do with the response (filter a
 * list, redact a result) and what to release (concurrency slots). `PLAIN` responses pass as sent.
 */
export const Req = Object.freeze({
  PLAIN: 0,
  TOOLS_LIST: 1,
  RESOURCES_LIST: 2,
  TEMPLATES_LIST: 3,
  PROMPTS_LIST: 4,
  TOOLS_CALL: 5,
  RESOURCES_READ: 6,
  RESOURCES_SUBSCRIBE: 7,
  PROMPTS_GET: 8,
  COMPLETE: 9,
} as const);
export type Req = (typeof Req)[keyof typeof Req];

const KINDS: ReadonlyMap<string, Req> = new Map<string, Req>([
  ['tools/list', Req.TOOLS_LIST],
  ['resources/list', Req.RESOURCES_LIST],
  ['resources/templates/list', Req.TEMPLATES_LIST],
  ['prompts/list', Req.PROMPTS_LIST],
  ['resources/read', Req.RESOURCES_READ],
  ['resources/subscribe', Req.RESOURCES_SUBSCRIBE],
  ['prompts/get', Req.PROMPTS_GET],
  ['completion/complete', Req.COMPLETE],
]);

/**
 * FORWARDED_PLAIN are the MCP request methods the relay passes as they are (besides the governed
 * and listed ones above): a request with any other method — one a newer revision of MCP added, a
 * vendor's — is refused unless a policy rule allows it (`rules[].methods`).
 */
const FORWARDED_PLAIN: ReadonlySet<string> = new Set(['initialize', 'ping', 'resources/unsubscribe', 'logging/setLevel']);

/** isForwardedPlain reports whether a PLAIN request's method is one the relay passes without asking the policy. */
export function isForwardedPlain(buf: Buffer, shape: MessageShape): boolean {
  return methodIs(buf, shape, Methods.ping) || FORWARDED_PLAIN.has(spanString(buf, shape.method));
}

/** requestKind classifies the agent request just scanned into `shape` (tools/call compared on its raw bytes, the hot case). */
export function requestKind(buf: Buffer, shape: MessageShape): Req {
  if (methodIs(buf, shape, Methods.toolsCall)) return Req.TOOLS_CALL;
  return KINDS.get(spanString(buf, shape.method)) ?? Req.PLAIN;
}

/** isGoverned reports whether requests of `kind` are decided (and recorded) one by one. */
export function isGoverned(kind: Req): boolean {
  return kind >= Req.TOOLS_CALL;
}
