/**
 * `switchover --json` after a failure: the report of what was done, with the
 * error's code, message and hint by name (an Error's message is not an
 * enumerable property, so spreading the error dropped it).
 */
import { describe, expect, it } from 'vitest';
import { SwitchoverError } from '../../../src/operations/switchover/error.js';
import { emptyReport } from '../../../src/operations/switchover/report.js';
import { switchoverToJson } from '../../../src/render/switchover.js';

describe('switchover JSON', () => {
  it('carries the failure code, message and hint', () => {
    const report = emptyReport('shop', 'forward', { node: 'old_root', database: 'old', display: 'u@h:1/old' }, { node: 'new_leaf', database: 'new', display: 'u@h:1/new' });
    const err = new SwitchoverError('switchover_reverse_not_permitted', 'the way back cannot work: no session_replication_role', 'grant it', report);
    const json = switchoverToJson(report, err) as { outcome: string; error: Record<string, string> };
    expect(json.outcome).toBe('failed');
    expect(json.error).toEqual({ code: 'switchover_reverse_not_permitted', message: 'the way back cannot work: no session_replication_role', hint: 'grant it' });
  });
});
