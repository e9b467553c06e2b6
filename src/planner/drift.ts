/**
 * Schema drift between a replicated table on the provider and the same table
 * on a subscriber, as plan checks that name the fix (pure):
 *
 * - `columns_missing_on_subscriber` (error): the provider ships columns the
 *   subscriber lacks (ADD COLUMN on the provider); the worker would stop.
 * - `column_renamed` (error): as many columns missing as extra, of the same
 *   types in the same places — a RENAME on the provider, to repeat there.
 * - `columns_extra_on_subscriber`: the subscriber has columns the provider
 *   does not (DROP COLUMN on the provider). An error when one is NOT NULL with
 *   neither a default nor identity nor generation (every replicated INSERT
 *   would fail), else a warning (new rows get its default there).
 * - `column_type_differs` (warning): the same column has another type.
 * - `subscriber_unique_not_on_provider` (warning): a unique key on the
 *   subscriber that no unique key of the provider implies (a key changed on
 *   the provider): rows the provider allows can fail there.
 *
 * A change on the provider to columns of a captured table is also picked up
 * by the capture (`~ capture_table`), planned elsewhere.
 */
import type { ColumnInfo, TableInfo } from '../catalog/model.js';
import { displayName, quoteIdent } from '../kernel/index.js';
import type { AddCheck } from './builder.js';

export interface DriftSite {
  /** The subscriber node, for messages. */
  node: string;
  /** Where in the file the checks point (the node's path). */
  path: string;
}

export function schemaDriftChecks(provider: TableInfo, subscriber: TableInfo, site: DriftSite, check: AddCheck): void {
  const name = displayName(provider);
  const shipped = provider.columns.filter((c) => c.generated === '');
  const has = (t: TableInfo, column: string) => t.columns.some((c) => c.name === column);
  const lacking = shipped.filter((c) => !has(subscriber, c.name));
  const extra = subscriber.columns.filter((c) => !has(provider, c.name));
  const renames = renamePairs(provider, subscriber, lacking, extra);
  const on = `on node "${site.node}"`;
  if (renames) {
    const statements = renames.map(([from, to]) => `ALTER TABLE ${sqlName(provider)} RENAME COLUMN ${quoteIdent(from.name)} TO ${quoteIdent(to.name)};`);
    check(
      'error',
      'column_renamed',
      `table ${name} ${on} has column(s) ${renames.map(([from, to]) => `${from.name} where the provider has ${to.name}`).join(', ')} (renamed on the provider?)`,
      `repeat the rename ${on}: ${statements.join(' ')}`,
      site.path,
    );
  } else {
    if (lacking.length) {
      check('error', 'columns_missing_on_subscriber', `table ${name} ${on} lacks the column(s) ${lacking.map((c) => c.name).join(', ')}`, 'add them on the subscriber (ALTER TABLE … ADD COLUMN)', site.path);
    }
    if (extra.length) {
      const blocking = extra.filter((c) => c.notNull && !c.hasDefault && c.generated === '' && !c.identity);
      check(
        blocking.length ? 'error' : 'warning',
        'columns_extra_on_subscriber',
        `table ${name} ${on} has column(s) ${extra.map((c) => c.name).join(', ')} that the provider does not (dropped there?)${
          blocking.length ? `: ${blocking.map((c) => c.name).join(', ')} ${blocking.length === 1 ? 'is' : 'are'} NOT NULL without a default, so every replicated INSERT fails` : ': rows replicated from now on get their default there'
        }`,
        blocking.length
          ? `drop them ${on} as on the provider (ALTER TABLE ${sqlName(provider)} DROP COLUMN …), or give them a default (ALTER COLUMN … SET DEFAULT …)`
          : `drop them ${on} as on the provider (ALTER TABLE ${sqlName(provider)} DROP COLUMN …), unless they are meant to differ`,
        site.path,
      );
    }
  }
  for (const c of shipped) {
    const other = subscriber.columns.find((x) => x.name === c.name);
    if (other && other.type !== c.type) {
      check('warning', 'column_type_differs', `column ${name}.${c.name} is ${c.type} on the provider and ${other.type} ${on}`, 'make sure every value converts (the subscriber reads the text of each value)', site.path);
    }
  }
  const providerKeys = uniqueKeys(provider);
  for (const key of uniqueKeys(subscriber)) {
    // Implied when some unique key of the provider is a subset of it: then two rows the provider allows differ there too.
    if (providerKeys.some((p) => p.every((c) => key.includes(c)))) continue;
    if (!key.every((c) => has(provider, c))) continue; // a column the provider lacks: reported above
    check(
      'warning',
      'subscriber_unique_not_on_provider',
      `table ${name} ${on} has a unique key (${key.join(', ')}) that no unique key of the provider implies (changed there?): rows the provider allows can fail there`,
      `make the keys match: drop or change that key ${on}, or add the same one on the provider`,
      site.path,
    );
  }
}

/** Columns missing and extra that pair up one to one by position and type: a rename each. */
function renamePairs(provider: TableInfo, subscriber: TableInfo, lacking: ColumnInfo[], extra: ColumnInfo[]): Array<[ColumnInfo, ColumnInfo]> | null {
  if (!lacking.length || lacking.length !== extra.length) return null;
  const pairs: Array<[ColumnInfo, ColumnInfo]> = [];
  for (const to of lacking) {
    const at = provider.columns.indexOf(to);
    const from = subscriber.columns[at];
    if (!from || !extra.includes(from) || from.type !== to.type) return null;
    pairs.push([from, to]);
  }
  return pairs;
}

/** The table's unique keys (primary key and unique NOT NULL indexes), each as a column list. */
function uniqueKeys(t: TableInfo): string[][] {
  return [...(t.primaryKey.length ? [t.primaryKey] : []), ...t.uniqueNotNull];
}

function sqlName(t: TableInfo): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
}
