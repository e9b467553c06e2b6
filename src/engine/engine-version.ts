/**
 * Whether the engine is in a database, as its readers outside the engine ask
 * it: the catalog (which engine version and content `plan` compares with its
 * own) and `status` (is there anything to read). Read-only.
 */
import type pg from 'pg';

/** The engine's tables are there (pgconvey.queue exists): `status` has something to read. */
export async function engineTablesPresent(client: pg.Client): Promise<boolean> {
  return (await client.query<{ ok: boolean }>("SELECT to_regclass('pgconvey.queue') IS NOT NULL AS ok")).rows[0]!.ok;
}

export interface EngineVersionRow {
  /** The newest migration installed (0 when pgconvey.engine holds no row). */
  version: number;
  /** The content version (sha256 of the engine SQL); null when not recorded (installed before pgconvey recorded it). */
  content: string | null;
}

/**
 * The installed engine's version and content, or null when pgconvey.engine
 * does not exist. The content is read through to_jsonb: engines installed
 * before the content column lack it.
 */
export async function readEngineVersion(client: pg.Client): Promise<EngineVersionRow | null> {
  if (!(await client.query<{ present: boolean }>(`SELECT to_regclass('pgconvey.engine') IS NOT NULL AS present`)).rows[0]!.present) return null;
  const row = (
    await client.query<{ version: number; content: string | null }>(
      `SELECT e.version, pg_catalog.to_jsonb(e) OPERATOR(pg_catalog.->>) 'content' AS content FROM pgconvey.engine e`,
    )
  ).rows[0];
  return { version: Number(row?.version ?? 0), content: row?.content ?? null };
}
