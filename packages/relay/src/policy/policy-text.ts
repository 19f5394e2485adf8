import { PolicyError } from '../errors.js';
import { YamlSyntaxError, parseYaml } from '@switchboard/common/config';
import { compilePolicy, type PolicySnapshot } from './compile.js';

/**
 * parsePolicyText parses and compiles policy YAML text; `source` names it in errors, which carry
 * the file, line and key path: `policy: ./policy.yaml:7:9: rules[0].tools.allow: must be a list
 * of strings, not a string`. Pure: reading the file is the caller's business.
 */
export function parsePolicyText(text: string, source?: string): PolicySnapshot {
  let parsed;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    if (err instanceof YamlSyntaxError) {
      const where = `${source ?? 'policy'}${err.line ? `:${err.line}` : ''}`;
      throw new PolicyError(`policy: ${where}: not valid YAML: ${err.message}`, { ...(err.line ? { line: err.line } : {}), cause: err });
    }
    throw err;
  }
  return compilePolicy(parsed.value, { ...(source ? { source } : {}), text, locate: parsed.locate });
}
