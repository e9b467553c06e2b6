/**
 * Installing or upgrading the engine in one database given by its
 * connection (`pgconvey engine install`; `apply` does it for every node of a
 * file through its install_engine and upgrade_engine actions).
 */
import type { ConnectionSpec } from '../config/index.js';
import { connect } from '../db/index.js';
import { installEngine, type InstallResult } from '../engine/index.js';

export { shortContent, EngineVersionError, type InstallResult } from '../engine/index.js';

/** Installs or upgrades the engine in the database at `connection`; throws EngineVersionError for a newer engine. */
export async function installEngineAt(connection: ConnectionSpec): Promise<InstallResult> {
  const client = await connect(connection, 'install');
  try {
    return await installEngine(client);
  } finally {
    await client.end();
  }
}
