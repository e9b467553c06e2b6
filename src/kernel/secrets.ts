/**
 * Secret hygiene: masks passwords in DSNs (URL and libpq key=value forms) and
 * scrubs known secret values out of arbitrary text, so nothing a user can
 * read — output, logs, plan files — ever carries a password.
 */

export const MASK = '***';

/** Masks the password of a DSN in either `postgres://u:pw@h/db?password=pw` or `password=pw` form. */
export function maskDsn(dsn: string): string {
  let out = dsn;
  // URL userinfo: scheme://user:password@host — the password runs to the last "@", since an
  // unencoded password may itself contain "@", "/", "?" or "#" (over-masking is safe).
  out = out.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@?#]*):(.*)@(?=[^@]*$)/i, (_m, head: string) => `${head}:${MASK}@`);
  // URL query parameter password=…
  out = out.replace(/([?&]password=)[^&#]*/gi, `$1${MASK}`);
  // key=value form: password = 'quoted \' value' | bare
  out = out.replace(/(^|\s)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)/gi, `$1$2${MASK}`);
  return out;
}

/**
 * Replaces every occurrence of each secret (longer first) in `text` by the mask,
 * and of each of its whitespace-separated pieces: a password with a space
 * that broke a DSN apart may surface in halves. A defence in depth: messages
 * are built never to contain a password at all. Secrets (and pieces) shorter
 * than 4 characters are skipped, as scrubbing them would mangle ordinary words.
 */
export function scrubSecrets(text: string, secrets: Iterable<string>): string {
  const all = new Set<string>();
  for (const secret of secrets) {
    all.add(secret);
    for (const piece of secret.split(/\s+/)) all.add(piece);
  }
  const list = [...all].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  let out = text;
  for (const secret of list) out = out.split(secret).join(MASK);
  return out;
}
