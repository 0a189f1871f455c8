#!/usr/bin/env node
/**
 * `tollgate [--config FILE]` and `tollgate check-config [--config FILE] [--discover]` (README:
 * "Command line").
 * The only place that prints to the terminal directly and the only process.exit.
 *
 * Exit codes: 0 after a clean shutdown (or a valid configuration); 1 for a bad configuration or a
 * start that failed (a port in use), with the problems printed and never a stack trace; 2 for
 * anything else, which is a bug in tollgate and says so in one line.
 */
import { releaseEarlySignals } from './early-signals.js'; // first: signals honoured from the start
import './v8-flags.js'; // before any other module allocates
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Config } from './config/schema.js';

const USAGE = `Usage:
  tollgate [--config FILE]                        run the proxy (or TOLLGATE_CONFIG=FILE; none: zero-file mode)
  tollgate check-config [--config FILE] [--discover]
                                                  validate; --discover also asks each provider for its metadata
Options:
  -c, --config FILE   YAML configuration file (every key is described in the README)
  -h, --help          this text
  -v, --version       print the version
Without a file, the environment configures one provider: TOLLGATE_UPSTREAM_URL, TOLLGATE_ISSUER,
TOLLGATE_CLIENT_ID, TOLLGATE_CLIENT_SECRET (TOLLGATE_INTROSPECTION_ENDPOINT to skip discovery,
TOLLGATE_AUTH_METHOD, TOLLGATE_CA_FILE).
TOLLGATE_LISTEN, TOLLGATE_ADMIN_LISTEN and TOLLGATE_LOG_LEVEL override the file.
Exit status: 0 ok; 1 invalid configuration or failed start (problems printed); 2 internal error (a bug).
`;

/** A start-up failure that is the operator's to fix (exit 1), as one line; undefined for a bug. */
function describeStartFailure(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string };
  if (typeof e?.code !== 'string') return undefined;
  const where = e.address === undefined ? '' : ` on ${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`;
  if (e.syscall === 'listen' || e.syscall === 'bind') {
    const why =
      e.code === 'EADDRINUSE'
        ? 'the address is already in use'
        : e.code === 'EACCES'
          ? 'permission denied (a port below 1024 needs privileges)'
          : e.code === 'EADDRNOTAVAIL'
            ? 'the address is not on this machine'
            : e.code;
    return `cannot listen${where}: ${why}`;
  }
  if (e.syscall === 'getaddrinfo') return `cannot listen: the host ${JSON.stringify(String(e.hostname))} is unknown (${e.code})`;
  return undefined;
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        discover: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 1;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`tollgate ${version()}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'run';
  if (positionals.length > 1 || (command !== 'run' && command !== 'check-config')) {
    process.stderr.write(`unknown command: ${positionals.join(' ')}\n\n${USAGE}`);
    return 1;
  }

  // tollgate's modules are loaded only now, with SIGTERM already handled: statically imported, they
  // would all load before any code of this file runs (about 0.1–0.3 s with the signal lost).
  const [{ startApp }, { formatProblems, loadConfig }, { runUntilSignalled }, { createLogger }, { fileSource }] =
    await Promise.all([
      import('./app.js'),
      import('./config/load.js'),
      import('./lifecycle.js'),
      import('./observability/log.js'),
      import('./reload.js'),
    ]);
  const result = loadConfig({ configPath: values.config });
  if (!result.ok) {
    process.stderr.write(
      `tollgate: invalid configuration (${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}):\n${formatProblems(result.problems)}\n`,
    );
    return 1;
  }
  const config = result.config;
  if (command === 'check-config') return checkConfig(config, values.discover === true);

  const logger = createLogger({ level: process.env.TOLLGATE_LOG_LEVEL || 'info' });
  let app;
  try {
    app = await startApp({ config, logger, source: fileSource({ configPath: values.config }) });
  } catch (err) {
    const failure = describeStartFailure(err);
    if (failure === undefined) throw err;
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    process.stderr.write(`tollgate: ${failure}\n`);
    return 1;
  }
  const lifecycle = runUntilSignalled(app, config);
  releaseEarlySignals();
  const code = await lifecycle.stopped;
  // Lines are written asynchronously: flush them before the process ends, so 'stopped' is never lost.
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  return code;
}

async function checkConfig(config: Config, discover: boolean): Promise<number> {
  const lines = [
    'configuration OK',
    `  listen ${config.listen}, admin ${config.admin_listen}, upstream ${config.upstream.url}`,
    `  providers (${config.providers.length}): ${config.providers.map((p) => `${p.name} <${p.issuer}>`).join(', ')}`,
    `  routes: ${config.routes.length}`,
  ];
  const [{ singleLine }, { metadataLocation }] = await Promise.all([
    import('./config/text.js'),
    import('./proxy/resource-metadata.js'),
  ]);
  if (config.resource !== undefined) {
    lines.push(`  resource ${config.resource.identifier}, metadata at ${metadataLocation(config.resource.identifier).href}`);
  }
  // Values are the operator's own, but a control character in one must not forge a line.
  process.stdout.write(`${lines.map(singleLine).join('\n')}\n`);
  if (!discover) return 0;
  const { describeFailure, discoverOnce } = await import('./provider/providers.js');
  let failed = 0;
  for (const provider of config.providers) {
    try {
      const { endpoint, probe } = await discoverOnce(provider);
      process.stdout.write(`  ${provider.name}: introspection at ${endpoint} (${probe})\n`);
    } catch (err) {
      failed++;
      process.stdout.write(`  ${provider.name}: discovery failed: ${describeFailure(err, provider.auth_method)}\n`);
    }
  }
  return failed === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Pending timers of closed pools must not hold the process once the work is done.
    setImmediate(() => process.exit(code)).unref();
  },
  (err: unknown) => {
    // Not the operator's mistake: one line that says so, with what is needed to report it.
    const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    process.stderr.write(
      `tollgate: internal error (a bug in tollgate ${version()}, please report it): ${what.replace(/\s+/g, ' ')}\n`,
    );
    process.exit(2);
  },
);
