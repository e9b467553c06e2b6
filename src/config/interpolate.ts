/**
 * `${VAR}` interpolation from the environment, done on the YAML document's
 * string scalars before validation, so secrets stay out of the file in git.
 * Forms: `${VAR}`, `${VAR:-default}` (default when unset or empty), and `$${`
 * for a literal `${`. An unset variable without a default is an error at the
 * exact column where it is written.
 */
import { visit } from 'yaml';
import type { Diagnostic } from '../kernel/index.js';
import { positionAt, type SourceDocument } from './document.js';

const REFERENCE = /\$\$\{|\$\{([^}]*)\}/g;
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function interpolateEnvironment(source: SourceDocument, env: NodeJS.ProcessEnv): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  visit(source.doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      const start = node.range?.[0] ?? 0;
      const end = node.range?.[1] ?? start;
      const raw = source.text.slice(start, end);
      node.value = node.value.replace(REFERENCE, (match: string, body: string | undefined) => {
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
        if (value !== undefined && (value !== '' || sep < 0)) return value;
        if (sep >= 0) return body.slice(sep + 2);
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

/** True when a scalar in the document still holds an unresolved reference (used to skip follow-on errors). */
export function hasUnresolvedReference(value: unknown): boolean {
  return typeof value === 'string' && /(^|[^$])\$\{/.test(value);
}
