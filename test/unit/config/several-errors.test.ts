/**
 * One file with several mistakes reports all of them in file order, with a
 * did-you-mean for misspellings, and no password in any message.
 */
import { describe, expect, it } from 'vitest';
import { loadDesiredState } from '../../../src/config/index.js';

const SECRET = 'Tr0ub4dor&3';

describe('a file with several errors', () => {
  it('reports every error at once, ordered by position, with suggestions', async () => {
    const result = await loadDesiredState('test/fixtures/desired/several-errors.yaml', { PGCONVEY_TEST_PASSWORD: SECRET });
    const summary = result.diagnostics.map((d) => `${d.severity} ${d.code}@${d.position?.line}:${d.position?.col}`);
    expect(summary).toEqual([
      'error missing_key@9:7',
      'error unknown_key@9:19',
      'error unknown_provider@9:55',
      'error unqualified_name@11:29',
      'error invalid_duration@14:18',
    ]);
    const byCode = Object.fromEntries(result.diagnostics.map((d) => [d.code, d]));
    expect(byCode.unknown_key!.hint).toContain('did you mean "database"?');
    expect(byCode.unknown_provider!.hint).toContain('did you mean "old_root"?');
    expect(JSON.stringify(result.diagnostics)).not.toContain(SECRET);
    expect(result.secrets).toContain(SECRET);
  });
});
