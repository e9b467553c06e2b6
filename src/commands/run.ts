/**
 * `pgconvey run FILE [--node NAME]` — runs what the file needs (tickers,
 * workers, copies, and replication a switchover set up) until SIGTERM or
 * SIGINT, with structured logs and optional Prometheus metrics. Exit 1 when
 * some work had to stop for good.
 */
import { Args, Flags } from '@oclif/core';
import { PgconveyError } from '../kernel/index.js';
import { createRunMetrics, loadFile, runDesiredState, shutdownSignal } from '../workflow/index.js';
import { PgconveyCommand } from './shared/command.js';
import { logFlags, makeLogger, requireNode } from './shared/flags.js';

export default class Run extends PgconveyCommand {
  static override summary = 'Run replication for FILE: tickers, apply workers and copies, until stopped.';
  static override description =
    'One process that runs everything the file needs: the ticker and maintenance of each queue on its root, and for each subscriber the apply worker and its initial copies — or, with --node, only the work of that node, so the work can be spread over machines (a second process with the same work waits for the first: tickers and workers hold advisory locks). Reconnects with backoff when a server restarts or the network drops; replication set up by `switchover --reverse` is found and started by itself. Stops cleanly on SIGTERM/SIGINT: the batch in flight is finished or rolled back, never half applied.';
  static override examples = [
    '<%= config.bin %> run plans/upgrade-two-node.yaml',
    '<%= config.bin %> run plans/upgrade-two-node.yaml --node new_leaf --log-format json',
    '<%= config.bin %> run plans/upgrade-two-node.yaml --metrics-port 9187   # curl localhost:9187/metrics',
  ];
  static override args = { file: Args.string({ description: 'the desired-state YAML file', required: true }) };
  static override flags = {
    node: Flags.string({ description: 'run only the work of this node (its ticker if it is a root, its worker if a subscriber)' }),
    'metrics-port': Flags.integer({ description: 'serve Prometheus metrics on this port (/metrics; /healthz)', min: 1, max: 65535 }),
    'metrics-host': Flags.string({ description: 'address the metrics server listens on', default: '0.0.0.0' }),
    'copy-parallel': Flags.integer({ description: "how many tables each subscriber copies at the same time (default: the file's daemons.copy.parallel)", min: 1, max: 64 }),
    ...logFlags,
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Run);
    const { state } = await loadFile(args.file, this.workflow);
    requireNode(state, flags.node, args.file);
    const log = makeLogger(flags);
    const metrics = flags['metrics-port'] ? await createRunMetrics() : undefined;
    let server;
    if (metrics && flags['metrics-port']) {
      const where = `${flags['metrics-host']}:${flags['metrics-port']}`;
      server = await metrics.serve(flags['metrics-port'], flags['metrics-host']).catch((err: NodeJS.ErrnoException) => {
        throw new PgconveyError('metrics_port_unavailable', `cannot listen on ${where} (${err.code ?? String(err)})`, 'pick a free port with --metrics-port', { cause: err });
      });
      log.info('serving metrics', { url: `http://${where}/metrics` });
    }
    // startup_ms: since the process began (Node, the command's modules, the file loaded): the timeline of a copy starts here.
    log.info('running', { file: args.file, ...(flags.node ? { node: flags.node } : {}), startup_ms: Math.round(performance.now()) });
    const result = await runDesiredState({ state, node: flags.node, log, signal: shutdownSignal(log), metrics, copyParallel: flags['copy-parallel'] });
    server?.close();
    if (result.failed.length) this.exit(1);
  }
}
