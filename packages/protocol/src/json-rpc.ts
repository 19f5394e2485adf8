import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/**
 * The shape of one JSON-RPC 2.0 message as MCP peers exchange it. The connector checks every line
 * a backend writes with it, and the agent SDK every frame the relay sends; the relay has its own
 * scanner (it also bounds depth and size while it reads).
 */

type Json = Record<string, unknown>;

const RELATED_TASK_META_KEY = 'io.modelcontextprotocol/related-task';

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON-RPC id as the SDK accepts it: a string or a safe integer. */
function isId(v: unknown): boolean {
  return typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v));
}

/** `_meta` of params and results: absent, or an object whose known keys are well typed. */
function isMeta(v: unknown): boolean {
  if (v === undefined) return true;
  if (!isObject(v)) return false;
  const token = v.progressToken;
  if (token !== undefined && !isId(token)) return false;
  const task = v[RELATED_TASK_META_KEY];
  return task === undefined || (isObject(task) && typeof task.taskId === 'string');
}

function isParams(v: unknown): boolean {
  return v === undefined || (isObject(v) && isMeta(v._meta));
}

/** onlyKeys says whether every own key of `o` is one of `allowed` (the SDK's top-level schemas are strict). */
function onlyKeys(o: Json, allowed: readonly string[]): boolean {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) return false;
  return true;
}

const REQUEST_KEYS: readonly string[] = ['jsonrpc', 'id', 'method', 'params'];
const NOTIFICATION_KEYS: readonly string[] = ['jsonrpc', 'method', 'params'];
const RESULT_KEYS: readonly string[] = ['jsonrpc', 'id', 'result'];
const ERROR_KEYS: readonly string[] = ['jsonrpc', 'id', 'error'];

/**
 * isJsonRpcMessage accepts exactly what the MCP SDK's `JSONRPCMessageSchema` accepts (a request,
 * notification, result or error response; strict at the top level, ids strings or safe integers),
 * without building the copy zod returns. A test checks the two agree.
 */
export function isJsonRpcMessage(v: unknown): v is JSONRPCMessage {
  if (!isObject(v) || v.jsonrpc !== '2.0') return false;
  if (v.method !== undefined) {
    if (typeof v.method !== 'string' || !isParams(v.params)) return false;
    if (v.id === undefined) return onlyKeys(v, NOTIFICATION_KEYS);
    return isId(v.id) && onlyKeys(v, REQUEST_KEYS);
  }
  if (v.result !== undefined) return isId(v.id) && isObject(v.result) && isMeta(v.result._meta) && onlyKeys(v, RESULT_KEYS);
  const e = v.error;
  if (e === undefined || !isObject(e)) return false;
  return (v.id === undefined || isId(v.id)) && typeof e.code === 'number' && Number.isSafeInteger(e.code) && typeof e.message === 'string' && onlyKeys(v, ERROR_KEYS);
}
