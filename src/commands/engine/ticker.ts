/**
 * `pgconvey engine ticker --db DSN --queue Q` — runs the ticker and queue
 * maintenance of one queue on its root until SIGTERM/SIGINT (low level;
 * `pgconvey run` hosts it for a whole file). A failure prints on stderr, with its logs.
 */
import { Flags } from '@oclif/core';
import { runTickerDaemon, shutdownSignal } from '../../daemons/index.js';
import { PgconveyCommand } from '../shared/command.js';
import { dsnFlag, logFlags, makeLogger } from '../shared/flags.js';

export default class EngineTicker extends PgconveyCommand {
  static override summary = 'Run the ticker of one queue (low level).';
  static override description = 'Ticks the queue when a tick is due and rotates its event tables, until SIGTERM or SIGINT. Only one ticker per queue runs at a time; a second one waits and takes over when the first stops.';
  static override examples = ['<%= config.bin %> engine ticker --db "host=old dbname=shop" --queue shop'];
  static override flags = {
    db: Flags.string({ description: 'DSN of the root database', required: true }),
    queue: Flags.string({ description: 'queue name', required: true }),
    ...logFlags,
  };

  protected override errorStream(): NodeJS.WritableStream {
    return process.stderr;
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(EngineTicker);
    const log = makeLogger(flags);
    await runTickerDaemon({ provider: dsnFlag('db', flags.db), queue: flags.queue, log, signal: shutdownSignal(log) });
  }
}
