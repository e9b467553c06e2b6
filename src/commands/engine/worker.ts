/**
 * `pgconvey engine worker --provider DSN --subscriber DSN --queue Q --consumer C`
 * — applies batches of one subscription until SIGTERM/SIGINT (low level;
 * `pgconvey run` hosts it for a whole file). Safe to kill at any moment.
 * A failure prints on stderr, with its logs; one the worker logged already exits 1 quietly.
 */
import { Flags } from '@oclif/core';
import { isFatalWorkerError, runWorkerDaemon, shutdownSignal } from '../../daemons/index.js';
import { PgconveyCommand } from '../shared/command.js';
import { dsnFlag, logFlags, makeLogger } from '../shared/flags.js';

export default class EngineWorker extends PgconveyCommand {
  static override summary = 'Run the apply worker of one subscription (low level).';
  static override description = 'Applies each batch of the queue on the subscriber in one transaction together with the new position, exactly once, until SIGTERM or SIGINT; beside it, copies the tables waiting for their initial copy (largest first, --copy-parallel at a time) and merges them by snapshot. Reconnects with backoff when a server goes away. Exits 1 when the position is lost or the subscriber is not set up.';
  static override examples = ['<%= config.bin %> engine worker --provider "host=old dbname=shop" --subscriber "host=new dbname=shop" --queue shop --consumer new'];
  static override flags = {
    provider: Flags.string({ description: 'DSN of the provider (root) database', required: true }),
    subscriber: Flags.string({ description: 'DSN of the subscriber database', required: true }),
    queue: Flags.string({ description: 'queue name', required: true }),
    consumer: Flags.string({ description: 'consumer (subscription) name', required: true }),
    'copy-parallel': Flags.integer({ description: 'how many tables copy at the same time', default: 2, min: 1, max: 64 }),
    ...logFlags,
  };

  protected override errorStream(): NodeJS.WritableStream {
    return process.stderr;
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(EngineWorker);
    const log = makeLogger(flags);
    try {
      await runWorkerDaemon({
        provider: dsnFlag('provider', flags.provider),
        subscriber: dsnFlag('subscriber', flags.subscriber),
        queue: flags.queue,
        consumer: flags.consumer,
        copyParallel: flags['copy-parallel'],
        log,
        signal: shutdownSignal(log),
      });
    } catch (err) {
      if (isFatalWorkerError(err)) this.exit(1);
      throw err;
    }
  }
}
