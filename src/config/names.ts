/**
 * Schema-qualified names and globs for table and sequence selection:
 * `schema.table`, `public.*`, `"Sales"."Order Items"`, `app_?.log_[0-9]*`.
 * Unquoted parts fold to lower case as in SQL; quoted parts match exactly.
 * `*`, `?` and `[...]` are glob characters in unquoted parts only. A plain
 * name's exact parts are a `QualifiedName`, which is how the name travels on
 * (planner, action params, executor, SQL); it is never joined and split again.
 */
import { displayName, displayPart, qualifiedName, type QualifiedName } from '../kernel/index.js';

export interface NamePattern {
  /** As written in the file. */
  text: string;
  isGlob: boolean;
  schema: RegExp;
  name: RegExp;
  /** For a plain name (no glob): the exact schema and relation name. */
  exact?: QualifiedName;
}

export interface NameProblem {
  code: 'invalid_name' | 'invalid_glob' | 'unqualified_name';
  message: string;
  hint: string;
}

const UNQUOTED_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;

interface ParsedPart {
  regex: string;
  literal: string;
  isGlob: boolean;
}

export function parseNamePattern(text: string): NamePattern | NameProblem {
  const parts: ParsedPart[] = [];
  let current: ParsedPart = { regex: '', literal: '', isGlob: false };
  let i = 0;
  let sawAny = false;
  const problem = (code: NameProblem['code'], message: string, hint: string): NameProblem => ({ code, message, hint });
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"') {
      const close = findClosingQuote(text, i + 1);
      if (close < 0) return problem('invalid_name', `"${text}" has an unterminated double quote`, 'close the quoted identifier with " (write "" for a quote inside it)');
      const literal = text.slice(i + 1, close).replace(/""/g, '"');
      if (literal === '') return problem('invalid_name', `"${text}" has an empty quoted identifier`, 'write a name between the double quotes');
      current.literal += literal;
      current.regex += escapeRegex(literal);
      sawAny = true;
      i = close + 1;
    } else if (ch === '.') {
      if (!sawAny) return problem('invalid_name', `"${text}" has an empty part`, 'write schema.table with both parts, e.g. public.orders or public.*');
      parts.push(current);
      current = { regex: '', literal: '', isGlob: false };
      sawAny = false;
      i++;
    } else if (ch === '*') {
      current.regex += '.*';
      current.isGlob = true;
      sawAny = true;
      i++;
    } else if (ch === '?') {
      current.regex += '.';
      current.isGlob = true;
      sawAny = true;
      i++;
    } else if (ch === '[') {
      const close = text.indexOf(']', i + 2);
      if (close < 0) return problem('invalid_glob', `"${text}" has a "[" without a closing "]"`, 'close the character class, e.g. log_[0-9]*, or quote the name if "[" is part of it');
      let cls = text.slice(i + 1, close);
      const negate = cls.startsWith('!');
      if (negate) cls = cls.slice(1);
      if (cls === '') return problem('invalid_glob', `"${text}" has an empty character class`, 'put the allowed characters between [ and ], e.g. [abc] or [0-9]');
      current.regex += `[${negate ? '^' : ''}${cls.replace(/[\\\]^]/g, (c) => `\\${c}`)}]`;
      current.isGlob = true;
      sawAny = true;
      i = close + 1;
    } else if (ch === ']') {
      return problem('invalid_glob', `"${text}" has a "]" without an opening "["`, 'remove it, or quote the name if "]" is part of it');
    } else if (UNQUOTED_CHAR.test(ch)) {
      const lower = ch.toLowerCase();
      current.literal += lower;
      current.regex += escapeRegex(lower);
      sawAny = true;
      i++;
    } else {
      return problem('invalid_name', `"${text}" contains "${ch}", which is not allowed in an unquoted name`, `put the part in double quotes, e.g. public."${ch === ' ' ? 'order items' : `a${ch}b`}"`);
    }
  }
  if (!sawAny) {
    return problem('invalid_name', text === '' ? 'the name is empty' : `"${text}" has an empty part`, 'write schema.table, e.g. public.orders or public.*');
  }
  parts.push(current);
  if (parts.length === 1) return problem('unqualified_name', `"${text}" has no schema`, `qualify it with its schema, e.g. public.${text}`);
  if (parts.length > 2) return problem('invalid_name', `"${text}" has ${parts.length} parts; expected schema.name`, 'leave out the database name; write schema.name, quoting parts that contain dots');
  const [schema, name] = parts as [ParsedPart, ParsedPart];
  const isGlob = schema.isGlob || name.isGlob;
  return {
    text,
    isGlob,
    schema: new RegExp(`^${schema.regex}$`, 's'),
    name: new RegExp(`^${name.regex}$`, 's'),
    ...(isGlob ? {} : { exact: qualifiedName(schema.literal, name.literal) }),
  };
}

export function isNameProblem(x: NamePattern | NameProblem): x is NameProblem {
  return 'code' in x;
}

export function matchesPattern(pattern: NamePattern, schema: string, name: string): boolean {
  return pattern.schema.test(schema) && pattern.name.test(name);
}

/** Quotes an identifier part for display only when it would not survive unquoted (kernel's `displayPart`). */
export function displayIdent(part: string): string {
  return displayPart(part);
}

/** `schema.name` for people (kernel's `displayName`). */
export function displayQualified(schema: string, name: string): string {
  return displayName({ schema, name });
}

function findClosingQuote(text: string, from: number): number {
  let i = from;
  while (i < text.length) {
    if (text[i] === '"') {
      if (text[i + 1] === '"') {
        i += 2;
        continue;
      }
      return i;
    }
    i++;
  }
  return -1;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
