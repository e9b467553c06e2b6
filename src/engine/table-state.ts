/**
 * The states of a subscriber's table (pgconvey.subscriber_table.state), in
 * the order a table goes through them: `pending` (waiting for its copy),
 * `copying` (the COPY runs), `catching-up` (copied; the worker merges the
 * events from the copy's tick on), `ok` (replicating). The one place these
 * names are spelled; everything else uses the type.
 */

export const TABLE_STATES = ['pending', 'copying', 'catching-up', 'ok'] as const;

export type TableState = (typeof TABLE_STATES)[number];

export function isTableState(value: unknown): value is TableState {
  return typeof value === 'string' && (TABLE_STATES as readonly string[]).includes(value);
}

/** A copy is under way or not yet merged: the table's rows are not yet the provider's. */
export function isCopyInProgress(state: TableState): boolean {
  return state === 'copying' || state === 'catching-up';
}
