/**
 * The one renderer of errors: any thrown value reads `error CODE: message`
 * with a `hint:` — pgconvey's own errors as they are, a module's error with a
 * code and hint, a PostgreSQL server error by its SQLSTATE, a list of
 * diagnostics, anything else as internal_error — and the same as JSON.
 */
import chalk from 'chalk';
import { beforeAll, describe, expect, it } from 'vitest';
import { DsnError } from '../../../src/config/index.js';
import { DiagnosticError, PgconveyError } from '../../../src/kernel/index.js';
import { errorDiagnostics, errorToJson, renderError, serverErrorCode } from '../../../src/render/index.js';
import { SavedPlanError } from '../../../src/workflow/index.js';

/** What pg's DatabaseError carries. */
function serverError(code: string, message: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { name: 'error', code, severity: 'ERROR', ...extra });
}

describe('renderError', () => {
  beforeAll(() => {
    chalk.level = 0;
  });

  it('prints a PgconveyError (and its subclasses) as error CODE: message with its hint', () => {
    expect(renderError(new PgconveyError('unknown_node', 'no node "x" in f.yaml', 'name one of: a, b'))).toBe('error unknown_node: no node "x" in f.yaml\n    hint: name one of: a, b');
    expect(renderError(new SavedPlanError('plan_stale', 'the saved plan is stale', 'review a new plan'))).toBe('error plan_stale: the saved plan is stale\n    hint: review a new plan');
    const dsn = new DsnError('the DSN is empty', 'write host=…');
    expect(dsn).toBeInstanceOf(PgconveyError);
    expect(renderError(dsn)).toBe('error invalid_dsn: the DSN is empty\n    hint: write host=…');
  });

  it('prints a position as FILE:LINE:COL:', () => {
    expect(renderError(new PgconveyError('x_y', 'm', 'h', { position: { file: 'a.yaml', line: 3, col: 5 } }))).toBe('a.yaml:3:5: error x_y: m\n    hint: h');
  });

  it("prints a module's error with a string code and hint as it is", () => {
    const err = Object.assign(new Error('table public.nope is not replicated'), { code: 'table_not_replicated', hint: 'name a replicated table' });
    expect(renderError(err)).toBe('error table_not_replicated: table public.nope is not replicated\n    hint: name a replicated table');
  });

  it('prints every diagnostic of a DiagnosticError, warnings included', () => {
    const err = new DiagnosticError([
      { severity: 'warning', code: 'yaml_warning', message: 'w', position: { file: 'f', line: 1, col: 1 } },
      { severity: 'error', code: 'missing_key', message: 'm', hint: 'h', position: { file: 'f', line: 2, col: 3 } },
    ]);
    expect(err).toBeInstanceOf(PgconveyError);
    expect(err.code).toBe('missing_key');
    expect(renderError(err)).toBe('f:1:1: warning yaml_warning: w\nf:2:3: error missing_key: m\n    hint: h');
    expect(errorToJson(err)).toMatchObject({ error: { code: 'missing_key', message: 'm', hint: 'h' }, diagnostics: [{ code: 'yaml_warning' }, { code: 'missing_key', line: 2, col: 3 }] });
  });

  it('gives a server error a stable code for its SQLSTATE, its words, detail and SQLSTATE, and its own hint when it has one', () => {
    expect(renderError(serverError('42501', 'permission denied for table t'))).toMatch(/^error permission_denied: the server said: permission denied for table t \(SQLSTATE 42501\)\n {4}hint: \S/);
    expect(errorDiagnostics(serverError('57014', 'canceling statement due to statement timeout'))[0]!.code).toBe('statement_timeout');
    expect(errorDiagnostics(serverError('55P03', 'could not obtain lock'))[0]!.code).toBe('lock_not_available');
    expect(errorDiagnostics(serverError('28P01', 'password authentication failed'))[0]!.code).toBe('wrong_password');
    expect(errorDiagnostics(serverError('28000', 'no pg_hba.conf entry'))[0]!.code).toBe('not_authorized');
    expect(serverErrorCode('53300')).toBe('server_resources');
    expect(serverErrorCode('57P01')).toBe('server_shutting_down');
    const other = errorDiagnostics(serverError('42P01', 'relation "x" does not exist', { detail: 'some\n detail', hint: 'create it' }))[0]!;
    expect(other).toMatchObject({ code: 'server_error', message: 'the server said: relation "x" does not exist (some detail) (SQLSTATE 42P01)', hint: 'create it' });
  });

  it('prints anything else as internal_error with a hint to report it', () => {
    for (const thrown of [new Error('boom'), 'a string', 42, null, undefined, { code: 'EEXIST' }]) {
      const [d] = errorDiagnostics(thrown);
      expect(d!.code).toBe('internal_error');
      expect(d!.hint).toMatch(/report it/);
      expect(renderError(thrown)).toMatch(/^error internal_error: pgconvey stopped on an unexpected error: .*\n {4}hint: /);
    }
  });

  it('as JSON: {error: {code, message, hint}}', () => {
    expect(errorToJson(new PgconveyError('unknown_queue', 'no queue "shp"', 'did you mean "shop"?'))).toEqual({ error: { code: 'unknown_queue', message: 'no queue "shp"', hint: 'did you mean "shop"?' } });
  });
});
