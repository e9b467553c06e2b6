/**
 * `pgconvey switchover` refusals through the CLI, before anything connects
 * or changes: a bad duration, an unknown queue or node (with a suggestion),
 * no terminal to confirm on, a missing file, an unreachable database — each
 * with its code, a hint, and exit 1 (oclif's own usage errors exit 2).
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli.js';

const FILE = 'test/fixtures/scenarios/shop.yaml';
// Nothing listens on port 1: a refusal that gets as far as connecting says so.
const env = { PGCONVEY_OLD_DSN: 'host=127.0.0.1 port=1 user=x dbname=old', PGCONVEY_NEW_DSN: 'host=127.0.0.1 port=1 user=x dbname=new' };

describe('pgconvey switchover refusals', () => {
  it('needs --to', async () => {
    const r = await runCli(['switchover', FILE], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Missing required flag to');
  });

  it('rejects a duration without a unit', async () => {
    const r = await runCli(['switchover', FILE, '--to', 'new_leaf', '--max-lag', '5', '--auto-approve'], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('error invalid_duration: --max-lag "5" is not a duration');
    expect(r.stdout).toContain('hint: write a number with a unit');
  });

  it('names an unknown node or queue and suggests the right one', async () => {
    const node = await runCli(['switchover', FILE, '--to', 'new_lef', '--auto-approve'], { env });
    expect(node.code).toBe(1);
    expect(node.stdout).toContain('error unknown_node: queue "shop" has no node "new_lef"');
    expect(node.stdout).toContain('hint: did you mean "new_leaf"?');
    const queue = await runCli(['switchover', FILE, '--to', 'new_leaf', '--queue', 'shp', '--auto-approve', '--json'], { env });
    expect(queue.code).toBe(1);
    expect(JSON.parse(queue.stdout).error).toMatchObject({ code: 'unknown_queue', hint: 'did you mean "shop"?' });
  });

  it('asks for --auto-approve when there is no terminal to confirm on', async () => {
    const r = await runCli(['switchover', FILE, '--to', 'new_leaf'], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('error confirmation_needed');
    expect(r.stdout).toContain('hint: run again with --auto-approve');
  });

  it('reports a missing file and an unreachable database', async () => {
    const missing = await runCli(['switchover', 'no/such/file.yaml', '--to', 'new', '--auto-approve'], { env });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain('file_not_found');
    const down = await runCli(['switchover', FILE, '--to', 'new_leaf', '--auto-approve'], { env });
    expect(down.code).toBe(1);
    expect(down.stdout).toContain('error connection_refused');
  });
});
