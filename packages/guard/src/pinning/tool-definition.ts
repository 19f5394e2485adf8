import { canonicalJson, sha256Hex } from '../internal/canonical-json.js';

/**
 * ToolDefinition is the part of an MCP `Tool` (an entry of a `tools/list` result) that pinning
 * reads. Other fields (`title`, `outputSchema`, `_meta`, `icons`) are passed through untouched and
 * are not part of the pinned hash.
 */
export interface ToolDefinition {
  name: string;
  description?: string;
  inputSchema?: unknown;
  annotations?: unknown;
  [key: string]: unknown;
}

/** TOOL_NAME_PATTERN is what a tool name may look like: 1–128 of `A–Z a–z 0–9 _ . -`. */
export const TOOL_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * validToolName reports whether `name` is a string of 1–128 characters from `A–Z a–z 0–9 _ . -`,
 * compared exactly: no trimming, no Unicode normalisation, so look-alike names are refused.
 */
export function validToolName(name: unknown): name is string {
  return typeof name === 'string' && TOOL_NAME_PATTERN.test(name);
}

/**
 * toolDefinitionHash is the lowercase hex SHA-256 of the canonical JSON (keys sorted at every
 * level, no whitespace) of `{ name, description, inputSchema, annotations }` taken from `tool`, an
 * absent field written as `null`. Key order and whitespace in what the server sent do not change
 * it; any change of wording, schema or annotation does. Throws `GUARD_ERR_NOT_JSON` when the
 * definition holds something JSON cannot (never the case for a parsed message).
 *
 * @example
 * toolDefinitionHash({ name: 'get_order', description: 'Look up an order', inputSchema: { type: 'object' } });
 */
export function toolDefinitionHash(tool: ToolDefinition): string {
  return sha256Hex(
    canonicalJson({
      name: tool.name ?? null,
      description: tool.description ?? null,
      inputSchema: tool.inputSchema ?? null,
      annotations: tool.annotations ?? null,
    }),
  );
}

/** ToolSummary is a short, human-readable trace of a definition, kept beside its hash for operators. */
export interface ToolSummary {
  /** title is the tool's `title` (or `annotations.title`), when it has one, cut to 120 characters. */
  title?: string;
  /** description is the start of the description, cut to 200 characters. */
  description: string;
  /** inputs lists up to 64 property names of the input schema, sorted. */
  inputs: string[];
}

function cut(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** summarizeTool builds the {@link ToolSummary} of a definition. */
export function summarizeTool(tool: ToolDefinition): ToolSummary {
  const annotations = tool.annotations as { title?: unknown } | undefined;
  const title = typeof tool.title === 'string' ? tool.title : typeof annotations?.title === 'string' ? annotations.title : undefined;
  const props = (tool.inputSchema as { properties?: unknown } | undefined)?.properties;
  const inputs = typeof props === 'object' && props !== null && !Array.isArray(props) ? Object.keys(props).sort().slice(0, 64).map((k) => cut(k, 128)) : [];
  return {
    ...(title !== undefined ? { title: cut(title, 120) } : {}),
    description: typeof tool.description === 'string' ? cut(tool.description, 200) : '',
    inputs,
  };
}
