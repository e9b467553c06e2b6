/**
 * `pgconvey engine install --db DSN` — installs or upgrades the engine SQL in
 * one database (low level; `apply` does this for every node of a file).
 */
import { Flags } from '@oclif/core';
import { installEngineAt, shortContent } from '../../workflow/index.js';
import { PgconveyCommand } from '../shared/command.js';
import { dsnFlag } from '../shared/flags.js';

export default class EngineInstall extends PgconveyCommand {
  static override summary = 'Install or upgrade the pgconvey engine in one database (low level).';
  static override description = 'Creates the pgconvey schema with its tables and functions, or upgrades an engine of fewer migrations or other content in place. Installing the installed content changes nothing; a newer engine is refused. `pgconvey apply` does this for every node of a desired-state file.';
  static override examples = ['<%= config.bin %> engine install --db "host=127.0.0.1 dbname=shop user=postgres"'];
  static override flags = {
    db: Flags.string({ description: 'DSN of the database', required: true }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(EngineInstall);
    const r = await installEngineAt(dsnFlag('db', flags.db));
    const what = (version: number | null, content: string | null) => (version === null ? 'none' : `version ${version} (content ${shortContent(content)})`);
    this.print(r.action === 'unchanged' ? `engine ${what(r.to, r.toContent)} is installed; nothing to do` : `engine ${r.action}: ${what(r.from, r.fromContent)} → ${what(r.to, r.toContent)}`);
  }
}
