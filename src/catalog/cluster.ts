/**
 * Reads the catalog of every database of a desired state, in parallel, one
 * read-only connection each, closed afterwards.
 */
import type { DatabaseSpec } from '../config/index.js';
import { connect } from '../db/index.js';
import { introspectNode } from './introspect.js';
import type { NodeCatalog } from './model.js';

export async function introspectDatabases(databases: readonly DatabaseSpec[]): Promise<Record<string, NodeCatalog>> {
  const entries = await Promise.all(
    databases.map(async (db) => {
      const client = await connect(db.connection, 'plan');
      try {
        return [db.name, await introspectNode(client)] as const;
      } finally {
        await client.end().catch(() => undefined);
      }
    }),
  );
  return Object.fromEntries(entries);
}
