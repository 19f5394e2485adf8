/**
 * `@switchboard/common/config`: validating config files (relay.yaml, policy.yaml, connector.yaml).
 * YAML is parsed strictly with positions kept; zod schemas built from the vocabulary here carry the
 * messages; the first broken rule becomes a {@link SchemaViolation} at a key path, which the loader
 * turns into `file:line:col: path: rule`.
 */
export { SchemaViolation, formatPath, kindOf, isPlainObject } from './violation.js';
export type { PathSegment } from './violation.js';
export { parseYaml, readYamlFile, YamlSyntaxError } from './yaml.js';
export type { YamlSource } from './yaml.js';
export { object, string, stringList, boolean, integer, oneOf, record, validate, violationOf, check, unknownKeyRule } from './schema.js';
export type { ObjectOptions, StringOptions } from './schema.js';
export { z } from 'zod';
export { identitySetting, isWorkloadApiSetting } from './identity-setting.js';
export type { IdentitySetting, WorkloadApiSetting } from './identity-setting.js';
