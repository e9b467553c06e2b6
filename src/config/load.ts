/**
 * Loading a desired-state file: read, parse YAML with positions, interpolate
 * the environment, validate against the schema, check the semantics, and —
 * only when there is no error — normalise. Returns every diagnostic at once;
 * never throws for a problem in the file.
 */
import { readFile } from 'node:fs/promises';
import { hasErrors, sortDiagnostics, type Diagnostic, type SourcePosition } from '../kernel/index.js';
import { parseDsn } from './connection.js';
import type { DesiredState } from './desired-state.js';
import { locatePath, parseSource } from './document.js';
import { interpolateEnvironment } from './interpolate.js';
import { normalize, type RawDesiredState } from './normalize.js';
import { checkSchema } from './schema-check.js';
import { checkSemantics } from './semantic.js';

export interface LoadResult {
  /** Present only when `diagnostics` has no error. */
  state?: DesiredState;
  diagnostics: Diagnostic[];
  /** Every password found (after interpolation): callers scrub these from anything they print. */
  secrets: string[];
  /**
   * Where a dotted path of the document (`queues.app.nodes.new`, as plan
   * checks name it) is in the file; undefined when the path is not there.
   * Present when the file parsed.
   */
  locate?: (path: string) => SourcePosition | undefined;
}

export async function loadDesiredState(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      diagnostics: [
        {
          severity: 'error',
          code: code === 'ENOENT' ? 'file_not_found' : 'file_unreadable',
          message: code === 'ENOENT' ? `${file} does not exist` : `${file} cannot be read (${code ?? 'unknown error'})`,
          hint: code === 'ENOENT' ? 'check the path; examples live in plans/' : 'check the file permissions',
        },
      ],
      secrets: [],
    };
  }
  return loadDesiredStateFromText(file, text, env);
}

export function loadDesiredStateFromText(file: string, text: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const { source, diagnostics } = parseSource(file, text);
  if (hasErrors(diagnostics)) return { diagnostics: sortDiagnostics(diagnostics), secrets: [] };
  diagnostics.push(...interpolateEnvironment(source, env));
  const data: unknown = source.doc.toJS();
  if (data === null || data === undefined || typeof data !== 'object' || Array.isArray(data)) {
    diagnostics.push({
      severity: 'error',
      code: 'not_a_mapping',
      message: `${file} does not hold a mapping at the top level`,
      hint: 'start the file with `version: 1`, then `databases:` and `queues:` (see plans/ for examples)',
      position: { file, line: 1, col: 1 },
    });
    return { diagnostics: sortDiagnostics(diagnostics), secrets: [] };
  }
  const secrets = collectSecrets(data, env);
  diagnostics.push(...checkSchema(source, data), ...checkSemantics(source, data));
  const sorted = sortDiagnostics(diagnostics);
  const locate = (path: string) => locatePath(source, path);
  if (hasErrors(sorted)) return { diagnostics: sorted, secrets, locate };
  return { state: normalize(file, data as RawDesiredState), diagnostics: sorted, secrets, locate };
}

/**
 * Every password the file gives (after interpolation), for scrubbing: of each
 * DSN that parses, and — for one that does not — everything written after its
 * `password=` or in its URL user information; the `password:` fields; and
 * PGPASSWORD, which libpq-style clients (pg_dump) read when no password is given.
 */
function collectSecrets(data: object, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  if (env.PGPASSWORD) out.push(env.PGPASSWORD);
  const databases = (data as { databases?: unknown }).databases;
  if (!databases || typeof databases !== 'object') return out;
  for (const db of Object.values(databases as Record<string, unknown>)) {
    const dsn = typeof db === 'string' ? db : (db as { dsn?: unknown } | null)?.dsn;
    if (typeof dsn === 'string') {
      try {
        const pw = parseDsn(dsn).password;
        if (pw) out.push(pw);
      } catch {
        // Reported by the semantic check; scrub whatever may hold the password.
        const kv = /password\s*=\s*'?([\s\S]*)$/i.exec(dsn);
        if (kv?.[1]) out.push(kv[1]);
        const url = /^postgres(?:ql)?:\/\/[^:@]*:([\s\S]*)@/i.exec(dsn);
        if (url?.[1]) out.push(url[1]);
      }
    }
    const pw = (db as { password?: unknown } | null)?.password;
    if (typeof pw === 'string' && pw) out.push(pw);
  }
  return out;
}
