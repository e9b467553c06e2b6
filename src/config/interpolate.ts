/**
 * `${VAR}` interpolation from the environment, done on the YAML document's
 * string scalars before validation, so secrets stay out of the file in git.
 * Forms: `${VAR}`, `${VAR:-default}` (default when unset or empty), and `$${`
 * for a literal `${`. An unset variable without a default is an error at the
 * exact column where it is written.
 *
 * In a key=value DSN (a database entry or its `dsn:`), a reference that is a
 * whole value stands for that value literally: `password=${PW}` and
 * `password='${PW}'` keep spaces, quotes and backslashes of PW as they are
 * (the value is quoted and escaped as libpq reads it). A URL DSN takes the
 * variable's text as written there (percent-encode it in the variable).
 */
import { isPair, isScalar, visit } from 'yaml';
import type { Diagnostic } from '../kernel/index.js';
import { positionAt, type SourceDocument } from './document.js';

const REFERENCE = /\$\$\{|\$\{([^}]*)\}/g;
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function interpolateEnvironment(source: SourceDocument, env: NodeJS.ProcessEnv): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  visit(source.doc, {
    Scalar(key, node, path) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      const keys = path.filter(isPair).map((p) => (isScalar(p.key) ? String(p.key.value) : ''));
      const isDsn = key === 'value' && keys[0] === 'databases' && path.length >= 3 && (keys.length === 2 || (keys.length === 3 && keys[2] === 'dsn')) && !/^\s*postgres(ql)?:\/\//i.test(node.value);
      const template = node.value;
      const start = node.range?.[0] ?? 0;
      const end = node.range?.[1] ?? start;
      const raw = source.text.slice(start, end);
      node.value = node.value.replace(REFERENCE, (match: string, body: string | undefined, offset: number) => {
        const literal = (value: string) => (isDsn ? asKeyValue(template, offset, match.length, value) : value);
        if (body === undefined) return '${'; // the `$${` escape
        const where = () => {
          const at = raw.indexOf(match);
          return positionAt(source, at >= 0 ? start + at : start);
        };
        const sep = body.indexOf(':-');
        const name = sep >= 0 ? body.slice(0, sep) : body;
        if (!VAR_NAME.test(name)) {
          diagnostics.push({
            severity: 'error',
            code: 'invalid_env_reference',
            message: `"${match}" is not a valid environment reference`,
            hint: 'write ${NAME} or ${NAME:-default} with NAME made of letters, digits and _; write $${ for a literal ${',
            position: where(),
          });
          return match;
        }
        const value = env[name];
        if (value !== undefined && (value !== '' || sep < 0)) return literal(value);
        if (sep >= 0) return literal(body.slice(sep + 2));
        diagnostics.push({
          severity: 'error',
          code: 'unset_env_var',
          message: `environment variable ${name} is not set`,
          hint: `export ${name}=… before running pgconvey, or write \${${name}:-default} to give a default`,
          position: where(),
        });
        return match;
      });
    },
  });
  return diagnostics;
}

/**
 * The text to put for a reference at `offset` in a key=value DSN template:
 * inside quotes (`key='${V}'`) the value with \ and ' escaped; as a whole
 * bare value (`key=${V}` up to a space or the end) the value quoted when it
 * needs to be; elsewhere (part of a value, or a whole DSN) as it is.
 */
function asKeyValue(template: string, offset: number, length: number, value: string): string {
  const before = template.slice(0, offset);
  const after = template.slice(offset + length);
  const escaped = value.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
  if (/=\s*'$/.test(before) && after.startsWith("'")) return escaped;
  if (/(^|\s)[A-Za-z_]+\s*=\s*$/.test(before) && /^(\s|$)/.test(after)) return value === '' || /[\s'\\]/.test(value) ? `'${escaped}'` : value;
  return value;
}

/** True when a scalar in the document still holds an unresolved reference (used to skip follow-on errors). */
export function hasUnresolvedReference(value: unknown): boolean {
  return typeof value === 'string' && /(^|[^$])\$\{/.test(value);
}
