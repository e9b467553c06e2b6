/**
 * Cross-field rules that JSON Schema cannot say: references between nodes and
 * databases, the shape of each queue's provider tree (one root, no cycles, no
 * leaf as a provider), connection strings, and table/sequence name patterns.
 * Runs on the raw data even when the schema check found errors, guarding every
 * access, so one run reports every problem.
 */
import { closest, type Diagnostic } from '../kernel/index.js';
import { DsnError, parseDsn, type RawDatabase } from './connection.js';
import { locate, formatPath, type DocPath, type SourceDocument } from './document.js';
import { isNameProblem, parseNamePattern } from './names.js';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function checkSemantics(source: SourceDocument, data: unknown): Diagnostic[] {
  const out: Diagnostic[] = [];
  if (!isObj(data)) return out;
  const report = (code: string, path: DocPath, message: string, hint: string, at: 'key' | 'value' = 'value', severity: Diagnostic['severity'] = 'error') => {
    out.push({ severity, code, message, hint, path: formatPath(path), position: locate(source, path, at) });
  };

  const databases = isObj(data.databases) ? data.databases : {};
  for (const [name, db] of Object.entries(databases)) checkDatabase(source, name, db as RawDatabase, report);

  const queues = isObj(data.queues) ? data.queues : {};
  for (const [queueName, queue] of Object.entries(queues)) {
    if (!isObj(queue)) continue;
    checkNodes(queueName, queue, Object.keys(databases), report);
    checkSelection(['queues', queueName, 'tables'], queue.tables, true, report);
    checkSelection(['queues', queueName, 'sequences'], queue.sequences, false, report);
  }
  return out;
}

type Report = (code: string, path: DocPath, message: string, hint: string, at?: 'key' | 'value', severity?: Diagnostic['severity']) => void;

function checkDatabase(source: SourceDocument, name: string, db: RawDatabase, report: Report): void {
  const path = ['databases', name];
  const dsn = typeof db === 'string' ? db : isObj(db) && typeof db.dsn === 'string' ? db.dsn : undefined;
  const dsnPath = typeof db === 'string' ? path : [...path, 'dsn'];
  if (isObj(db)) {
    const fields = ['host', 'port', 'user', 'password', 'dbname'].filter((k) => k in db);
    if (dsn !== undefined && fields.length > 0) {
      report('conflicting_connection', path, `database "${name}" has both a dsn and the field(s) ${fields.join(', ')}`, 'use either `dsn:` or the separate fields, not both', 'key');
    }
    if (typeof db.password === 'string' && db.password !== '' && !rawText(source, [...path, 'password']).includes('${')) {
      report('password_in_file', [...path, 'password'], `database "${name}" has its password written in the file`, 'write password: ${SOME_VAR} and export SOME_VAR, so the secret stays out of git', 'value', 'warning');
    }
  }
  if (dsn === undefined || dsn.includes('${')) return; // unset variables are reported by interpolation
  try {
    const spec = parseDsn(dsn);
    if (spec.password && !rawText(source, dsnPath).includes('${')) {
      report('password_in_file', dsnPath, `database "${name}" has a password written in its DSN`, 'write password=${SOME_VAR} in the DSN and export SOME_VAR, so the secret stays out of git', 'value', 'warning');
    }
  } catch (err) {
    if (!(err instanceof DsnError)) throw err;
    report('invalid_dsn', dsnPath, `database "${name}": ${err.message}`, err.hint);
  }
}

function rawText(source: SourceDocument, path: DocPath): string {
  const node = source.doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
  const range = node?.range;
  if (!range) return '';
  return source.text.slice(range[0], range[1]);
}

function checkNodes(queueName: string, queue: Obj, databaseNames: string[], report: Report): void {
  if (!isObj(queue.nodes)) return;
  const nodes = Object.entries(queue.nodes).filter((e): e is [string, Obj] => isObj(e[1]));
  const base = (node: string): DocPath => ['queues', queueName, 'nodes', node];
  const byName = new Map(nodes);
  const nodeNames = nodes.map(([n]) => n);

  const roots = nodes.filter(([, n]) => n.type === 'root');
  if (roots.length === 0 && nodes.length > 0) {
    report('missing_root', ['queues', queueName, 'nodes'], `queue "${queueName}" has no root node`, 'mark the node on the source database with `type: root`', 'key');
  }
  for (const [extra] of roots.slice(1)) {
    report('duplicate_root', [...base(extra), 'type'], `queue "${queueName}" has a second root "${extra}" (the first is "${roots[0]![0]}")`, 'a queue has exactly one root; make the other nodes `leaf` or `branch` with a `provider`');
  }

  const seenDatabase = new Map<string, string>();
  for (const [name, node] of nodes) {
    if (typeof node.database === 'string') {
      if (!databaseNames.includes(node.database)) {
        const guess = closest(node.database, databaseNames);
        report('unknown_database', [...base(name), 'database'], `node "${name}" uses database "${node.database}", which is not declared under databases`, guess ? `did you mean "${guess}"?` : `declare it under databases, or use one of: ${databaseNames.join(', ') || '(none declared)'}`);
      }
      const other = seenDatabase.get(node.database);
      if (other !== undefined) {
        report('duplicate_node_database', [...base(name), 'database'], `nodes "${other}" and "${name}" of queue "${queueName}" are on the same database "${node.database}"`, 'each node of a queue needs its own database; point one of them at another entry under databases');
      } else {
        seenDatabase.set(node.database, name);
      }
    }
    const hasProvider = 'provider' in node;
    if (node.type === 'root' && hasProvider) {
      report('root_with_provider', [...base(name), 'provider'], `root node "${name}" has a provider`, 'remove `provider:` from the root; only branch and leaf nodes have one', 'key');
    }
    // A misspelled `provider` key is reported as unknown_key; do not also call the provider missing.
    const misspelledProvider = Object.keys(node).some((k) => k !== 'provider' && closest(k, ['provider']) === 'provider');
    if ((node.type === 'leaf' || node.type === 'branch') && !hasProvider && !misspelledProvider) {
      report('missing_provider', base(name), `${String(node.type)} node "${name}" has no provider`, `add \`provider:\` naming the node it replicates from, e.g. ${roots[0]?.[0] ?? 'the root'}`, 'key');
    }
    if (hasProvider && typeof node.provider === 'string' && node.type !== 'root') {
      const provider = byName.get(node.provider);
      if (!provider) {
        const guess = closest(node.provider, nodeNames.filter((n) => n !== name));
        report('unknown_provider', [...base(name), 'provider'], `node "${name}" has provider "${node.provider}", which is not a node of queue "${queueName}"`, guess ? `did you mean "${guess}"?` : `use one of: ${nodeNames.filter((n) => n !== name).join(', ')}`);
      } else if (provider.type === 'leaf') {
        report('leaf_as_provider', [...base(name), 'provider'], `node "${name}" has provider "${node.provider}", which is a leaf`, `a leaf only receives; make "${node.provider}" a branch, or point "${name}" at the root or a branch`);
      }
    }
  }

  // Provider cycles: follow each chain; report every cycle once, at its first node in file order.
  const reported = new Set<string>();
  for (const [start] of nodes) {
    const chain: string[] = [];
    let current: string | undefined = start;
    while (current !== undefined && !chain.includes(current)) {
      chain.push(current);
      const node = byName.get(current);
      current = node && node.type !== 'root' && typeof node.provider === 'string' && byName.has(node.provider) ? node.provider : undefined;
    }
    if (current === undefined) continue;
    const cycle = chain.slice(chain.indexOf(current));
    if (cycle.some((n) => reported.has(n))) continue;
    cycle.forEach((n) => reported.add(n));
    const first = nodeNames.find((n) => cycle.includes(n))!;
    const ordered = [...cycle.slice(cycle.indexOf(first)), ...cycle.slice(0, cycle.indexOf(first))];
    report('provider_cycle', [...base(first), 'provider'], `nodes ${ordered.map((n) => `"${n}"`).join(' → ')} → "${first}" provide to each other in a cycle`, 'every chain of providers must end at the root; point one of these nodes at the root');
  }
}

function checkSelection(path: DocPath, selection: unknown, isTables: boolean, report: Report): void {
  const what = isTables ? 'table' : 'sequence';
  if (selection === undefined || !isObj(selection)) return;
  for (const list of ['include', 'exclude'] as const) {
    const items = selection[list];
    if (!Array.isArray(items)) continue;
    items.forEach((item, i) => {
      if (typeof item !== 'string' || item === '') return;
      const parsed = parseNamePattern(item);
      if (isNameProblem(parsed)) report(parsed.code, [...path, list, i], `${formatPath([...path, list])}: ${parsed.message}`, parsed.hint);
    });
  }
  const entries = isObj(selection.entries) ? selection.entries : {};
  for (const key of Object.keys(entries)) {
    const parsed = parseNamePattern(key);
    if (isNameProblem(parsed)) {
      report(parsed.code, [...path, 'entries', key], `${formatPath([...path, 'entries'])}: ${parsed.message}`, parsed.hint, 'key');
    } else if (parsed.isGlob) {
      report('glob_in_entry', [...path, 'entries', key], `${what} entry "${key}" is a glob`, `entries name one ${what} each; put globs under include:`, 'key');
    }
  }
  if (isTables) {
    // Only when the selection is well-formed: a misspelled or mistyped key is reported on its own.
    const wellFormed = Object.keys(selection).every((k) => ['include', 'exclude', 'entries'].includes(k)) && (selection.include === undefined || Array.isArray(selection.include));
    const include = Array.isArray(selection.include) ? selection.include : [];
    if (wellFormed && include.length === 0 && Object.keys(entries).length === 0) {
      report('empty_table_selection', path, `${formatPath(path)} selects no tables`, 'add include: ["public.*"] (globs) or entries: naming tables, so the queue has something to replicate', 'key');
    }
  }
}
