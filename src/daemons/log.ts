/**
 * Structured log lines for daemons: one line per event worth knowing, with a
 * level, a component, a message and fields — human-readable by default,
 * one JSON object per line with `--log-format json`.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'human' | 'json';
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(component: string): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(options: { format?: LogFormat; level?: LogLevel; component?: string; write?: (line: string) => void } = {}): Logger {
  const format = options.format ?? 'human';
  const min = ORDER[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const make = (component: string): Logger => {
    const emit = (level: LogLevel, msg: string, fields: LogFields = {}) => {
      if (ORDER[level] < min) return;
      const time = new Date().toISOString();
      const clean = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
      if (format === 'json') {
        write(JSON.stringify({ time, level, component, msg, ...clean }));
      } else {
        const rest = Object.entries(clean)
          .map(([k, v]) => `${k}=${typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : String(v)}`)
          .join(' ');
        write(`${time} ${level.toUpperCase().padEnd(5)} ${component}: ${msg}${rest ? ` ${rest}` : ''}`);
      }
    };
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (c) => make(`${component}.${c}`),
    };
  };
  return make(options.component ?? 'pgconvey');
}
