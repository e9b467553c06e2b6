/**
 * Step 6, `matviews`: the materialized views of the node taking writes,
 * refreshed in creation order (one built on another comes later). A REFRESH
 * that fails (not the owner…) does not stop the hand-over: the report names
 * each view not refreshed and why.
 */
import type pg from 'pg';
import { sqlFormat } from '../../kernel/index.js';
import type { SwitchoverReport } from './report.js';
import type { SwitchoverRun } from './run.js';

export async function refreshMatviews(run: SwitchoverRun, client: pg.Client, node: string): Promise<void> {
  await run.step('matviews', async () => {
    const { rows } = await client.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'm' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvey') ORDER BY c.oid`,
    );
    const result: NonNullable<SwitchoverReport['materializedViews']> = { refreshed: [], notRefreshed: [] };
    run.report.materializedViews = result;
    for (const r of rows) {
      const view = `${r.schema}.${r.name}`;
      if (run.options.refreshMatviews === false) {
        result.notRefreshed.push({ view, reason: 'skipped (--no-refresh-matviews)' });
        continue;
      }
      try {
        await client.query(sqlFormat('REFRESH MATERIALIZED VIEW %I.%I', r.schema, r.name));
        result.refreshed.push(view);
      } catch (err) {
        result.notRefreshed.push({ view, reason: `${(err as Error).message} (SQLSTATE ${(err as { code?: string }).code ?? 'unknown'})` });
      }
    }
    const not = result.notRefreshed.length ? `; NOT refreshed: ${result.notRefreshed.map((m) => `${m.view} (${m.reason})`).join(', ')}` : '';
    return { value: null, detail: rows.length ? `${result.refreshed.length} of ${rows.length} materialized view(s) on "${node}" refreshed${not}` : `no materialized views on "${node}"` };
  });
}
