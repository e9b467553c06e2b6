/**
 * `pgconvey validate FILE` — checks a desired-state file without connecting
 * anywhere: YAML syntax, schema, `${VAR}` references, node topology, names.
 * Exit 0 when valid (warnings allowed), 1 on any error.
 */
import { Args, Flags } from '@oclif/core';
import { loadDesiredState } from '../config/index.js';
import { hasErrors } from '../kernel/index.js';
import { countLine, diagnosticToJson, renderDesiredStateSummary, renderDiagnostics, summarizeDesiredState } from '../render/index.js';
import { PgconveyCommand } from './shared/command.js';

export default class Validate extends PgconveyCommand {
  static override summary = 'Check a desired-state file: syntax, schema, references and topology.';
  static override description = `Reads FILE, resolves \${VAR} references from the environment, and reports every problem at once as FILE:LINE:COL: error CODE: message, each with a hint. Connects to no database. Exits 0 when the file is valid (warnings allowed) and 1 otherwise.`;
  static override examples = ['<%= config.bin %> validate plans/upgrade-two-node.yaml', '<%= config.bin %> validate plans/cascade.yaml --json'];
  static override args = {
    file: Args.string({ description: 'the desired-state YAML file', required: true }),
  };
  static override flags = {
    json: Flags.boolean({ description: 'print the result as JSON' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Validate);
    this.json = flags.json;
    const result = await loadDesiredState(args.file);
    this.workflow.onSecrets?.(result.secrets);
    const failed = hasErrors(result.diagnostics);
    const print = (text: string) => this.print(text);
    if (flags.json) {
      print(
        JSON.stringify(
          {
            file: args.file,
            valid: !failed,
            errors: result.diagnostics.filter((d) => d.severity === 'error').length,
            warnings: result.diagnostics.filter((d) => d.severity === 'warning').length,
            diagnostics: result.diagnostics.map(diagnosticToJson),
            ...(result.state ? { declares: summarizeDesiredState(result.state) } : {}),
          },
          null,
          2,
        ),
      );
    } else {
      if (result.diagnostics.length) print(renderDiagnostics(result.diagnostics));
      if (result.state) {
        print(`${args.file} is valid${result.diagnostics.length ? ` (${countLine(result.diagnostics)})` : ''}.`);
        print(renderDesiredStateSummary(result.state));
      } else {
        print(`${args.file}: ${countLine(result.diagnostics)}.`);
      }
    }
    if (failed) this.exit(1);
  }
}
