/**
 * The one list of server timeouts pgconvey's sessions run without: connect()
 * turns off at startup the three every server knows and the newer two by
 * statement; the copy's sessions run the same statement again.
 */
import { describe, expect, it } from 'vitest';
import { clientConfig } from '../../../src/db/connect.js';
import { NO_TIMEOUTS_SQL, NO_TIMEOUTS_STARTUP_OPTIONS } from '../../../src/db/session-settings.js';
import { NO_TIMEOUTS_SQL as ENGINE_NO_TIMEOUTS_SQL } from '../../../src/engine/session.js';

describe('session settings', () => {
  it('every connection starts without the timeouts of PostgreSQL 10, and writable', () => {
    const config = clientConfig({ host: 'h', port: 5432, user: 'u', dbname: 'd' } as never, 'status');
    expect(config.options).toBe('-c default_transaction_read_only=off -c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0');
    expect(NO_TIMEOUTS_STARTUP_OPTIONS).toBe('-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0');
  });

  it('one statement turns off every timeout the server knows, the newer ones included; the engine uses the same', () => {
    for (const name of ['statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout', 'transaction_timeout']) {
      expect(NO_TIMEOUTS_SQL).toContain(`'${name}'`);
    }
    expect(NO_TIMEOUTS_SQL).toMatch(/FROM pg_catalog\.pg_settings/);
    expect(ENGINE_NO_TIMEOUTS_SQL).toBe(NO_TIMEOUTS_SQL);
  });
});
