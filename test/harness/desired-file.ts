/**
 * Desired-state files for tests: the usual two-node upgrade (one queue, an
 * old root and a new leaf) with what each test varies — names, the tables
 * and sequences selected, connections (literal DSNs or the environment's
 * PGCONVEY_OLD_DSN / PGCONVEY_NEW_DSN), and extra top-level YAML.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';

export interface TwoNodeOptions {
  queue?: string;
  root?: string;
  leaf?: string;
  /** DSNs written into the file; default `${PGCONVEY_OLD_DSN}` / `${PGCONVEY_NEW_DSN}` from the environment. */
  oldDsn?: string;
  newDsn?: string;
  /** Table include globs; default public.*. */
  tables?: string[];
  /** Sequence include globs; default none. */
  sequences?: string[];
  /** Extra top-level YAML (prepare:, daemons:…). */
  extra?: string;
}

export function twoNodeYaml(o: TwoNodeOptions = {}): string {
  const [root, leaf] = [o.root ?? 'old_root', o.leaf ?? 'new_leaf'];
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  return [
    'version: 1',
    'databases:',
    `  old: "${o.oldDsn ?? '${PGCONVEY_OLD_DSN}'}"`,
    `  new: "${o.newDsn ?? '${PGCONVEY_NEW_DSN}'}"`,
    ...(o.extra ? [o.extra.trim()] : []),
    'queues:',
    `  ${o.queue ?? 'shop'}:`,
    '    nodes:',
    `      ${root}: { database: old, type: root }`,
    `      ${leaf}: { database: new, type: leaf, provider: ${root} }`,
    `    tables: { include: ${list(o.tables ?? ['public.*'])} }`,
    ...(o.sequences ? [`    sequences: { include: ${list(o.sequences)} }`] : []),
    '',
  ].join('\n');
}

/** Writes `twoNodeYaml(o)` into a new temporary folder; returns the file's path. */
export function writeTwoNodeFile(o: TwoNodeOptions = {}, name = 'shop.yaml'): string {
  const path = `${mkdtempSync('/tmp/pgconvey-test-')}/${name}`;
  writeFileSync(path, twoNodeYaml(o));
  return path;
}
