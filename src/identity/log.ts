/**
 * What the log says about the identity signing key: which one signs (by `kid`, never its
 * content), and a warning when it was generated, because each replica then has its own.
 */
import type { Logger } from '../observability/log.js';
import type { Identity } from './mint.js';

export function logSigningKey(log: Logger, before: Identity | undefined, after: Identity): void {
  const key = after.keys.current;
  if (key === null || key === before?.keys.current) return;
  const replaced = before?.keys.current?.kid;
  const fields = { kid: key.kid, alg: key.alg, ...(replaced === undefined ? {} : { replaced }) };
  if (key.generated) {
    log.warn(
      fields,
      'identity_jwt: signing with a key generated at start; suitable for one replica only (set key_file to share one key)',
    );
  } else {
    log.info(fields, 'identity_jwt: signing key loaded');
  }
}
