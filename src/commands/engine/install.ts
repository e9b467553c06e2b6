/**
 * `pgconvey engine install --db DSN` — installs or upgrades the engine SQL in
 * one database (low level; `apply` does this for every node of a file).
 */
import { Command, Flags } from '@oclif/core';
import { connect } from '../../db/index.js';
import { installEngine } from '../../engine/index.js';
import { dsnFlag } from '../shared/flags.js';

export default class EngineInstall extends Command {
  static override summary = 'Install or upgrade the pgconvey engine in one database (low level).';
  static override description = 'Creates the pgconvey schema with its tables and functions, or upgrades an older version in place. Installing the installed version changes nothing. `pgconvey apply` does this for every node of a desired-state file.';
  static override examples = ['<%= config.bin %> engine install --db "host=127.0.0.1 dbname=shop user=postgres"'];
  static override flags = {
    db: Flags.string({ description: 'DSN of the database', required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(EngineInstall);
    const client = await connect(dsnFlag('db', flags.db), 'install');
    try {
      const r = await installEngine(client);
      this.log(r.action === 'unchanged' ? `engine version ${r.to} is installed; nothing to do` : `engine ${r.action}: version ${r.from ?? 'none'} → ${r.to}`);
    } finally {
      await client.end();
    }
  }
}
