/**
 * pino, JSON on stdout (SPEC §6). `redact` is not optional: pino's request serializers log every
 * header, and a provider error may carry the request it failed on. Nothing tollgate logs is built
 * from a token, but these paths make sure a mistake elsewhere cannot leak one either.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS: readonly string[] = [
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'client_secret',
  '*.client_secret',
  'authorization',
  '*.authorization',
  'Authorization',
  '*.Authorization',
  'cookie',
  '*.cookie',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
];

export interface LoggerOptions {
  /** pino level; default `info` (TOLLGATE_LOG_LEVEL). */
  level?: string;
  /** Where lines go; default stdout, written asynchronously so a line costs the hot path little. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: options.level ?? 'info',
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      base: { service: 'tollgate' },
    },
    destination,
  );
}
