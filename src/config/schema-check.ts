/**
 * Structural validation against schemas/desired-state.schema.json with ajv,
 * every error turned into a diagnostic at the YAML position it concerns:
 * unknown keys point at the key (with a did-you-mean), wrong values at the
 * value, missing keys at the mapping that lacks them. The build writes the
 * compiled validator as code (ajv standalone, bin/schema-validator.js →
 * dist/config/desired-state.validate.cjs) so that a command starts without
 * loading ajv and compiling the schema (about 0.2 s of every start); without
 * that file, or when it was built from another schema, ajv compiles it here.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ErrorObject, Options, ValidateFunction } from 'ajv';
import { closest, type Diagnostic } from '../kernel/index.js';
import { formatPath, locate, type DocPath, type SourceDocument } from './document.js';

const SCHEMA_URL = new URL('../../schemas/desired-state.schema.json', import.meta.url);
/** The validator the build wrote as code, beside this module (dist/config/ only). */
const PRECOMPILED = './desired-state.validate.cjs';
const AJV_OPTIONS: Options = { allErrors: true, verbose: true, strict: true, allowUnionTypes: true };
const require = createRequire(import.meta.url);

let compiled: ValidateFunction | undefined;

export function desiredStateSchema(): Record<string, unknown> {
  return JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as Record<string, unknown>;
}

const schemaHash = (text: string) => createHash('sha256').update(text).digest('hex');

/** ajv itself, loaded only when the schema must be compiled here (ajv is CommonJS). */
function newAjv(options: Options): import('ajv').Ajv {
  const { Ajv } = require('ajv') as typeof import('ajv');
  return new Ajv(options);
}

function validator(): ValidateFunction {
  if (!compiled) {
    const text = readFileSync(SCHEMA_URL, 'utf8');
    let pre: { default?: ValidateFunction; schemaHash?: string } | undefined;
    try {
      pre = require(PRECOMPILED) as typeof pre;
    } catch {
      pre = undefined; // not built (tests from src/): compiled below
    }
    compiled = pre?.default && pre.schemaHash === schemaHash(text) ? pre.default : newAjv(AJV_OPTIONS).compile(JSON.parse(text) as Record<string, unknown>);
  }
  return compiled;
}

/**
 * The compiled validator as the source of a CommonJS module (ajv standalone),
 * with the hash of the schema it was built from: what the build writes to
 * dist/config/desired-state.validate.cjs.
 */
export function validatorSource(): string {
  const text = readFileSync(SCHEMA_URL, 'utf8');
  const ajv = newAjv({ ...AJV_OPTIONS, code: { source: true } });
  const validate = ajv.compile(JSON.parse(text) as Record<string, unknown>);
  const { default: standalone } = require('ajv/dist/standalone/index.js') as { default: (a: import('ajv').Ajv, v: ValidateFunction) => string };
  return `${standalone(ajv, validate)}
module.exports.schemaHash = ${JSON.stringify(schemaHash(text))};
`;
}

export function checkSchema(source: SourceDocument, data: unknown): Diagnostic[] {
  const validate = validator();
  if (validate(data)) return [];
  const errors = pruneErrors(validate.errors ?? []);
  return errors.map((e) => toDiagnostic(source, e));
}

/**
 * ajv reports the failing branch of every `anyOf` plus the `anyOf` itself;
 * keep the most specific errors and drop the branch noise.
 */
function pruneErrors(errors: ErrorObject[]): ErrorObject[] {
  const out: ErrorObject[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword === 'anyOf') continue;
    // `entries` values are null-or-object: a type error against the null branch is noise.
    if (e.keyword === 'type' && (e.params as { type?: string }).type === 'null') continue;
    // propertyNames reports the name's own error and then a summary; keep one.
    if (e.keyword === 'propertyNames') continue;
    const key = `${e.instancePath}|${e.keyword}|${JSON.stringify(e.params)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(e);
  }
  return out;
}

function pathOf(instancePath: string): string[] {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a number';
  return `a ${typeof value}`;
}

const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  null: 'nothing (null)',
};

/** A value short and safe enough to quote in a message (never a password or DSN). */
function quotable(path: DocPath, value: unknown): string | undefined {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const last = String(path[path.length - 1] ?? '');
  if (/password|dsn/i.test(last) || path.includes('databases')) return undefined;
  if (typeof value === 'string' && value.length <= 60) return JSON.stringify(value);
  return undefined;
}

function toDiagnostic(source: SourceDocument, e: ErrorObject): Diagnostic {
  const path = pathOf(e.instancePath);
  if (e.propertyName !== undefined) {
    // A key that breaks propertyNames (names of databases, queues, nodes).
    const keyPath = [...path, e.propertyName];
    return {
      severity: 'error',
      path: formatPath(keyPath),
      code: 'invalid_name',
      message: `"${e.propertyName}" in ${formatPath(path)} is not a valid name`,
      hint: 'names use letters, digits, _ and -, start with a letter or _, and have at most 63 characters',
      position: locate(source, keyPath, 'key'),
    };
  }
  const where = formatPath(path) || 'the top level';
  const base = { severity: 'error' as const, path: formatPath(path) };
  const schemaRef = String((e.parentSchema as { $ref?: string } | undefined)?.$ref ?? '');
  const isDurationSchema = e.schemaPath.includes('/duration/') || schemaRef.endsWith('/duration');
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String((e.params as { additionalProperty: string }).additionalProperty);
      const allowed = Object.keys((e.parentSchema as { properties?: object }).properties ?? {});
      const guess = closest(key, allowed);
      const keyPath = [...path, key];
      return {
        ...base,
        path: formatPath(keyPath),
        code: 'unknown_key',
        message: `unknown key "${key}" in ${where}`,
        hint: `${guess ? `did you mean "${guess}"? ` : ''}allowed keys: ${allowed.join(', ')}`,
        position: locate(source, keyPath, 'key'),
      };
    }
    case 'required': {
      const missing = String((e.params as { missingProperty: string }).missingProperty);
      return {
        ...base,
        code: 'missing_key',
        message: `${where} is missing the required key "${missing}"`,
        hint: describeRequired(missing),
        position: path.length ? locate(source, path, 'key') : { file: source.file, line: 1, col: 1 },
      };
    }
    case 'type': {
      if (isDurationSchema) {
        return {
          ...base,
          code: 'invalid_duration',
          message: `${where} is ${quotable(path, e.data) ?? 'not a string'}, which has no unit`,
          hint: 'write a number with a unit: ms, s, min or h (e.g. 500ms, 2s, 1min)',
          position: locate(source, path),
        };
      }
      const expected = String((e.params as { type: string | string[] }).type)
        .split(',')
        .map((t) => TYPE_WORDS[t] ?? t)
        .join(' or ');
      return {
        ...base,
        code: 'wrong_type',
        message: `${where} must be ${expected}, not ${typeName(e.data)}`,
        hint: schemaDescription(e),
        position: locate(source, path),
      };
    }
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String);
      const got = quotable(path, e.data) ?? 'this value';
      const guess = typeof e.data === 'string' ? closest(e.data, allowed) : undefined;
      return {
        ...base,
        code: 'invalid_value',
        message: `${where} is ${got}; expected one of ${allowed.join(', ')}`,
        hint: guess ? `did you mean "${guess}"?` : schemaDescription(e),
        position: locate(source, path),
      };
    }
    case 'const':
      return {
        ...base,
        code: path[0] === 'version' ? 'unsupported_version' : 'invalid_value',
        message: `${where} is ${quotable(path, e.data) ?? 'this value'}; expected ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`,
        hint: path[0] === 'version' ? 'this pgconvey reads format version 1; write `version: 1`' : schemaDescription(e),
        position: locate(source, path),
      };
    case 'pattern': {
      if (isDurationSchema) {
        return {
          ...base,
          code: 'invalid_duration',
          message: `${where} is ${quotable(path, e.data) ?? 'this value'}, which is not a duration`,
          hint: 'write a number with a unit: ms, s, min or h (e.g. 500ms, 2s, 1min)',
          position: locate(source, path),
        };
      }
      return {
        ...base,
        code: 'invalid_value',
        message: `${where} is ${quotable(path, e.data) ?? 'this value'}, which has the wrong form`,
        hint: schemaDescription(e),
        position: locate(source, path),
      };
    }
    case 'minProperties':
    case 'minItems':
    case 'minLength':
      return {
        ...base,
        code: 'empty_value',
        message: `${where} is empty`,
        hint: schemaDescription(e),
        position: locate(source, path),
      };
    case 'minimum':
    case 'maximum':
      return {
        ...base,
        code: 'out_of_range',
        message: `${where} is ${quotable(path, e.data) ?? 'out of range'}; it must be ${e.keyword === 'minimum' ? 'at least' : 'at most'} ${String((e.params as { limit: number }).limit)}`,
        hint: schemaDescription(e),
        position: locate(source, path),
      };
    case 'uniqueItems':
      return {
        ...base,
        code: 'duplicate_item',
        message: `${where} lists the same item twice`,
        hint: 'remove the repeated item',
        position: locate(source, path),
      };
    default:
      return {
        ...base,
        code: 'invalid_value',
        message: `${where}: ${e.message ?? 'invalid value'}`,
        hint: schemaDescription(e),
        position: locate(source, path),
      };
  }
}

function schemaDescription(e: ErrorObject): string | undefined {
  const description = (e.parentSchema as { description?: string } | undefined)?.description;
  return description?.replace(/`/g, '');
}

function describeRequired(key: string): string {
  switch (key) {
    case 'version':
      return 'add `version: 1` at the top of the file';
    case 'databases':
      return 'add a `databases:` mapping naming each database and its DSN';
    case 'queues':
      return 'add a `queues:` mapping with at least one queue, its nodes and tables';
    case 'nodes':
      return 'add `nodes:` with one root node and its subscribers';
    case 'tables':
      return 'add `tables:` with `include:` globs (e.g. ["public.*"]) or `entries:`';
    case 'database':
      return 'name the entry under `databases:` this node runs on';
    case 'type':
      return 'set `type:` to root, branch or leaf';
    default:
      return `add the key "${key}"`;
  }
}
