/**
 * A body run inside BEGIN … COMMIT on one client, rolled back (and the error
 * rethrown) when it fails.
 */
import type pg from 'pg';

export async function inTransaction(client: pg.Client, body: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    await body();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
