/**
 * Every invalid fixture under test/fixtures/desired/invalid must produce
 * exactly the listed errors — code, line and column — and nothing else.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDesiredState } from '../../../src/config/index.js';

const DIR = 'test/fixtures/desired/invalid';
const ENV = { PGCONVEY_TEST_PASSWORD: 'not-a-secret' };

const EXPECTED: Record<string, string[]> = {
  'bad-duration': ['invalid_duration@14:14'],
  'bad-env-reference': ['invalid_env_reference@3:14'],
  'bad-glob-bracket': ['invalid_glob@11:17'],
  'bad-name-space': ['invalid_name@11:17'],
  'bad-node-name': ['invalid_name@9:7'],
  'bad-node-type': ['invalid_value@9:33'],
  'bad-port': ['out_of_range@6:11'],
  'bad-prepare-mode': ['invalid_value@13:10'],
  'bad-sequence-glob': ['invalid_glob@13:17'],
  'conflicting-connection': ['conflicting_connection@4:3'],
  'copy-parallel-too-high': ['out_of_range@14:15'],
  'duplicate-key': ['duplicate_key@9:7'],
  'duplicate-node-database': ['duplicate_node_database@9:22'],
  'duration-without-unit': ['invalid_duration@14:20'],
  'empty-databases': ['empty_value@2:12', 'unknown_database@6:22', 'unknown_database@7:22'],
  'empty-key-list': ['empty_value@12:34'],
  'empty-table-selection': ['empty_table_selection@10:5'],
  'glob-in-entry': ['glob_in_entry@12:9'],
  'invalid-dsn-key': ['invalid_dsn@3:8'],
  'invalid-dsn-url': ['invalid_dsn@3:8'],
  'leaf-as-provider': ['leaf_as_provider@11:51'],
  'leaf-without-provider': ['missing_provider@9:7'],
  'max-events-zero': ['out_of_range@14:17'],
  'missing-provider-node': ['unknown_provider@9:49'],
  'missing-queues': ['missing_key@1:1'],
  'missing-version': ['missing_key@1:1'],
  'no-root': ['missing_root@7:5', 'leaf_as_provider@8:51', 'provider_cycle@8:51'],
  'not-a-mapping': ['not_a_mapping@1:1'],
  'provider-cycle': ['provider_cycle@10:51'],
  'root-with-provider': ['root_with_provider@8:39'],
  'self-provider': ['provider_cycle@9:51'],
  'too-many-parts': ['invalid_name@11:17'],
  'two-roots': ['duplicate_root@9:33'],
  'typo-include': ['unknown_key@11:7'],
  'typo-provider-key': ['unknown_key@9:39'],
  'unknown-database': ['unknown_database@9:22'],
  'unknown-top-key': ['unknown_key@5:1'],
  'unqualified-table': ['unqualified_name@11:29'],
  'unset-env-var': ['unset_env_var@3:45'],
  'unsupported-version': ['unsupported_version@1:10'],
  'wrong-type-include': ['wrong_type@11:16'],
  'wrong-type-nodes': ['wrong_type@7:12'],
  'yaml-syntax': ['yaml_syntax@3:8'],
};

describe('invalid desired-state files', () => {
  it('has an expectation for every fixture and a fixture for every expectation', () => {
    const files = readdirSync(DIR)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.replace(/\.yaml$/, ''))
      .sort();
    expect(files).toEqual(Object.keys(EXPECTED).sort());
    expect(files.length).toBeGreaterThanOrEqual(25);
  });

  for (const [name, expected] of Object.entries(EXPECTED)) {
    it(`${name}: ${expected.join(', ')}`, async () => {
      const file = join(DIR, `${name}.yaml`);
      const result = await loadDesiredState(file, ENV);
      const errors = result.diagnostics.filter((d) => d.severity === 'error');
      expect(errors.map((d) => `${d.code}@${d.position?.line}:${d.position?.col}`)).toEqual(expected);
      expect(result.state).toBeUndefined();
      for (const d of errors) {
        expect(d.position?.file).toBe(file);
        expect(d.message.length).toBeGreaterThan(10);
        expect(d.hint, `${d.code} needs a hint`).toBeTruthy();
      }
    });
  }
});
