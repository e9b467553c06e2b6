/**
 * The run loop every daemon shares: connect, step, wait, repeat; on an error,
 * log it, drop the connections, back off (doubling up to a ceiling) and
 * connect again; on abort (SIGTERM/SIGINT), let the current step finish, close
 * and return. Errors a retry cannot fix end the loop.
 */
import type { Logger } from './log.js';

export interface LoopOptions<C> {
  log: Logger;
  signal: AbortSignal;
  /** Opens connections and anything else a step needs. */
  connect: () => Promise<C>;
  /** One unit of work; returns how long to wait before the next (0: go on at once). */
  step: (ctx: C) => Promise<number>;
  /** Waits up to `ms` (may return early, e.g. on a NOTIFY). Default: a plain timer. */
  wait?: (ctx: C, ms: number) => Promise<void>;
  close: (ctx: C) => Promise<void>;
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** Errors that retrying cannot fix: the loop rethrows them. */
  isFatal?: (err: unknown) => boolean;
  /** Called for every error, before it is retried or rethrown (e.g. to count it). */
  onError?: (err: unknown) => void;
  /** The same error again (same text as the last one): logged at debug instead of warn, so a wait of hours logs it once (#17). */
  quietRepeats?: boolean;
  /** Called when the loop backs off after an error, with how long it waits before connecting again. */
  onBackoff?: (err: unknown, retryInMs: number) => void;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export async function runLoop<C>(options: LoopOptions<C>): Promise<void> {
  const { log, signal } = options;
  const baseDelay = options.retryDelayMs ?? 1000;
  const maxDelay = options.maxRetryDelayMs ?? 60_000;
  let delay = baseDelay;
  let lastError: string | undefined;
  while (!signal.aborted) {
    let ctx: C | undefined;
    try {
      ctx = await options.connect();
      while (!signal.aborted) {
        const waitMs = await options.step(ctx);
        // Back off afresh only once a step succeeded: a connect that works followed by a step that fails keeps backing off.
        delay = baseDelay;
        lastError = undefined;
        if (waitMs > 0 && !signal.aborted) {
          if (options.wait) await Promise.race([options.wait(ctx, waitMs), sleep(waitMs + 50, signal)]);
          else await sleep(waitMs, signal);
        }
      }
    } catch (err) {
      options.onError?.(err);
      if (options.isFatal?.(err)) {
        log.error('stopping: this cannot be fixed by retrying', { ...codeOf(err), error: errorText(err) });
        if (ctx !== undefined) await options.close(ctx).catch(() => undefined);
        throw err;
      }
      const text = errorText(err);
      if (options.quietRepeats && text === lastError) log.debug('same error again; will reconnect', { ...codeOf(err), error: text, retry_in_ms: delay });
      else log.warn('error; will reconnect', { ...codeOf(err), error: text, retry_in_ms: delay });
      lastError = text;
      options.onBackoff?.(err, delay);
    }
    if (ctx !== undefined) await options.close(ctx).catch(() => undefined);
    if (signal.aborted) break;
    await sleep(delay, signal);
    delay = Math.min(maxDelay, delay * 2);
  }
  log.info('stopped');
}

/**
 * A pgconvey error's stable code and hint (e.g. engine_changed), as log
 * fields; for a right the server refused (SQLSTATE 42501: a worker that may
 * not set session_replication_role, a table it may not write)
 * `daemon_permission_denied` with where to find the grant; nothing for other
 * errors.
 */
function codeOf(err: unknown): { code?: string; hint?: string } {
  const e = err as { code?: unknown; hint?: unknown };
  if (e?.code === '42501') {
    return { code: 'daemon_permission_denied', hint: 'the role of the file lacks a right: `pgconvey plan FILE` names the grants (see docs/security.md); the daemon retries until it has them' };
  }
  if (typeof e?.code !== 'string' || !/^[a-z]+(_[a-z]+)+$/.test(e.code)) return {};
  return { code: e.code, ...(typeof e.hint === 'string' ? { hint: e.hint } : {}) };
}

export function errorText(err: unknown): string {
  const e = err as { message?: string; code?: string; detail?: string };
  return `${e.message ?? String(err)}${e.detail ? ` — ${e.detail}` : ''}${e.code && /^[0-9A-Z]{5}$/.test(e.code) ? ` (SQLSTATE ${e.code})` : ''}`;
}

/** An AbortSignal fired by the first SIGTERM or SIGINT. */
export function shutdownSignal(log: Logger): AbortSignal {
  const controller = new AbortController();
  const onSignal = (name: string) => {
    if (controller.signal.aborted) return;
    log.info('shutting down', { signal: name });
    controller.abort();
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  return controller.signal;
}
