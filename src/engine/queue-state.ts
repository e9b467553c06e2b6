/**
 * A queue as its root holds it: whether it exists, the tables (with their key
 * columns) and sequences it captures, and how long the oldest tick a consumer
 * has not applied yet has been waiting (its lag). Reads only.
 */
import type pg from 'pg';
import type { QualifiedName } from '../kernel/index.js';

export async function queueExists(client: pg.Client, queue: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pgconvey.queue WHERE queue_name = $1', [queue])).rowCount! > 0;
}

/** A captured table and the key columns its events carry. */
export interface CapturedTableKeys extends QualifiedName {
  keyColumns: string[];
}

/** The queue's captured tables, by schema and name. */
export async function capturedTables(client: pg.Client, queue: string): Promise<CapturedTableKeys[]> {
  const { rows } = await client.query<{ schema: string; name: string; keys: string[] }>(
    'SELECT c.table_schema AS schema, c.table_name AS name, c.key_columns AS keys FROM pgconvey.captured_table c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1 ORDER BY 1, 2',
    [queue],
  );
  return rows.map((r) => ({ schema: r.schema, name: r.name, keyColumns: r.keys }));
}

/** The queue's captured sequences, by schema and name. */
export async function capturedSequences(client: pg.Client, queue: string): Promise<QualifiedName[]> {
  const { rows } = await client.query<{ schema: string; name: string }>(
    'SELECT s.seq_schema AS schema, s.seq_name AS name FROM pgconvey.captured_sequence s JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = $1 ORDER BY 1, 2',
    [queue],
  );
  return rows.map((r) => ({ schema: r.schema, name: r.name }));
}

/** How long the oldest tick after `consumerTick` has been waiting, in ms (0 when the consumer is at the last tick). */
export async function unappliedTickAgeMs(provider: pg.Client, queue: string, consumerTick: string): Promise<number> {
  const { rows } = await provider.query<{ ms: string }>(
    `SELECT extract(epoch FROM clock_timestamp() - t.tick_time) * 1000 AS ms FROM pgconvey.tick t
      WHERE t.queue_id = (SELECT queue_id FROM pgconvey.queue WHERE queue_name = $1) AND t.tick_id > $2 ORDER BY t.tick_id LIMIT 1`,
    [queue, consumerTick],
  );
  return rows.length ? Number(rows[0]!.ms) : 0;
}
