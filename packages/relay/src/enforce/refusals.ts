import { RpcErrorCode } from '@switchboard/protocol';
import type { UnknownToolReply } from '../config/limits.js';

/**
 * JSON-RPC messages the relay writes when enforcement refuses a request, and the notifications it
 * composes. Refusal `data` says what was refused and never which rule refused it (that is in the
 * audit trail), so an agent learns nothing about the policy beyond its own answer.
 */

function errorReply(idJson: string, code: number, message: string, data?: object): string {
  return `{"jsonrpc":"2.0","id":${idJson},"error":${JSON.stringify({ code, message, ...(data ? { data } : {}) })}}`;
}

/**
 * unknownToolReply answers a `tools/call` for a tool the agent may not use — or one that does not
 * exist: the two are deliberately indistinguishable. See {@link UnknownToolReply} for the styles.
 */
export function unknownToolReply(style: UnknownToolReply, idJson: string, name: string): string {
  if (style === 'jsonrpc-error') return errorReply(idJson, RpcErrorCode.UNKNOWN_TOOL, `Unknown tool: ${name}`);
  // Byte for byte what @modelcontextprotocol/sdk's McpServer (1.x) sends for a tool it does not have.
  const result = { content: [{ type: 'text', text: `MCP error ${RpcErrorCode.UNKNOWN_TOOL}: Tool ${name} not found` }], isError: true };
  return `{"result":${JSON.stringify(result)},"jsonrpc":"2.0","id":${idJson}}`;
}

/** invalidParamsReply answers a `tools/call` without a string `params.name`. */
export function invalidParamsReply(idJson: string): string {
  return errorReply(idJson, RpcErrorCode.INVALID_PARAMS, 'Invalid params', { reason: 'params.name must be a string' });
}

/** argumentDeniedReply answers a `tools/call` whose arguments break a constraint: -32003, naming the argument and the constraint. */
export function argumentDeniedReply(idJson: string, argument: string, constraint: string): string {
  const shown = argument.length > 128 ? `${argument.slice(0, 128)}…` : argument;
  // `arguments` itself is not an object (an array, a string): say what was expected.
  const message = constraint === 'arguments' ? 'Policy denied: params.arguments must be an object of named arguments' : `Policy denied: argument ${JSON.stringify(shown)} breaks its ${constraint} constraint`;
  return errorReply(idJson, RpcErrorCode.POLICY_DENIED, message, {
    reason: 'argument',
    argument: shown,
    constraint,
  });
}

/** resourceDeniedReply answers a `resources/read` or `resources/subscribe` of a resource the identity may not read: -32003. */
export function resourceDeniedReply(idJson: string): string {
  return errorReply(idJson, RpcErrorCode.POLICY_DENIED, 'Policy denied: resource not allowed', { reason: 'resource' });
}

/** promptDeniedReply answers a `prompts/get` of a prompt the identity may not use: -32003. */
export function promptDeniedReply(idJson: string): string {
  return errorReply(idJson, RpcErrorCode.POLICY_DENIED, 'Policy denied: prompt not allowed', { reason: 'prompt' });
}

/** invalidNameReply answers a governed request without the string parameter it is decided on. */
export function invalidNameReply(idJson: string, param: string): string {
  return errorReply(idJson, RpcErrorCode.INVALID_PARAMS, 'Invalid params', { reason: `params.${param} must be a string` });
}

/** rateLimitedReply answers a call over a rate or concurrency limit: -32029 with `data.retryAfterMs`. */
export function rateLimitedReply(idJson: string, retryAfterMs: number, limit: 'rate' | 'concurrent'): string {
  const message = limit === 'rate' ? 'Rate limit exceeded' : 'Too many calls in flight';
  return errorReply(idJson, RpcErrorCode.RATE_LIMITED, `${message}; retry after ${retryAfterMs} ms`, { retryAfterMs, limit });
}

/** unexaminableResultReply answers in the server's place when a result could not be examined for redaction. */
export function unexaminableResultReply(idJson: string): string {
  return errorReply(idJson, RpcErrorCode.POLICY_DENIED, 'Policy denied: the result could not be examined for secrets', { reason: 'redaction' });
}

/** ListKind names a list_changed notification (`tools`, `resources`, `prompts`). */
export type ListKind = 'tools' | 'resources' | 'prompts';

/** LIST_CHANGED holds the notifications that tell an agent to list again. */
export const LIST_CHANGED: Readonly<Record<ListKind, string>> = Object.freeze({
  tools: '{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}',
  resources: '{"jsonrpc":"2.0","method":"notifications/resources/list_changed"}',
  prompts: '{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}',
});
