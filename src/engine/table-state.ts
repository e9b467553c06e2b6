/**
 * The states of a subscriber's table (pgconvey.subscriber_table.state), in
 * the order a table goes through them: `pending` (waiting for its copy),
 * `copying` (the COPY runs), `catching-up` (copied; the worker merges the
 * events from the copy's tick on), `ok` (replicating); and `held` (#17: its
 * rows carry columns the subscriber's table lacks, after a schema change made
 * directly on the provider: its events are kept on the provider from its
 * copy_tick by a pin and applied, via `catching-up`, once the subscriber has
 * the columns — engine/table-hold.ts). The one place these names are spelled;
 * everything else uses the type.
 */

export const TABLE_STATES = ['pending', 'copying', 'catching-up', 'ok', 'held'] as const;

export type TableState = (typeof TABLE_STATES)[number];

export function isTableState(value: unknown): value is TableState {
  return typeof value === 'string' && (TABLE_STATES as readonly string[]).includes(value);
}

/** A copy is under way or not yet merged: the table's rows are not yet the provider's. */
export function isCopyInProgress(state: TableState): boolean {
  return state === 'copying' || state === 'catching-up';
}

/** The table's events from its copy_tick on are still to apply: its pin on the provider must stay (a copy in progress, or held). */
export function holdsEvents(state: TableState): boolean {
  return isCopyInProgress(state) || state === 'held';
}

/** A state read from the database (pgconvey.subscriber_table.state has no CHECK): one of the five, or an error naming it. */
export function tableStateOf(value: unknown): TableState {
  if (isTableState(value)) return value;
  throw new Error(`unknown table state ${JSON.stringify(value)} in pgconvey.subscriber_table (expected ${TABLE_STATES.join(', ')})`);
}

/** States as an SQL list of literals for `state IN (…)` / `state = …`, e.g. `'pending', 'copying'` (the names need no escaping). */
export function sqlStates(...states: readonly TableState[]): string {
  return states.map((s) => `'${s}'`).join(', ');
}
