/**
 * The last line of defence for secrets: once a command knows the passwords of
 * its file (or of its DSN flags), every write to stdout and stderr — its own
 * output, daemon logs, and errors printed by the CLI framework — has them
 * scrubbed. Messages are built never to hold a password; this catches what
 * comes from elsewhere (a server's or a library's error text).
 */
import { scrubSecrets } from '../../kernel/index.js';

const known = new Set<string>();
let installed = false;

/** Adds `secrets` to what is scrubbed from stdout and stderr, installing the scrubber on first use. */
export function guardOutput(secrets: Iterable<string | undefined>): void {
  for (const s of secrets) if (s) known.add(s);
  if (installed || known.size === 0) return;
  installed = true;
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk === 'string') return write(scrubSecrets(chunk, known), ...rest);
      if (chunk instanceof Uint8Array) return write(scrubSecrets(Buffer.from(chunk).toString('utf8'), known), ...rest);
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
}
