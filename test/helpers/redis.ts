/**
 * A real redis-server for the shared cache's tests (Debian's `redis-server`; .ci/run installs it
 * when missing): one per test, on a free loopback port the system picked, with no persistence
 * (`--save '' --appendonly no`), started within a bounded wait and stopped by its PID. It can be
 * killed, restarted on the same port, paused (SIGSTOP) and resumed, as the failure tests need.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Test } from 'tap';
import { Redis } from 'ioredis';

export interface TestRedis {
  readonly port: number;
  /** `redis://127.0.0.1:<port>/0`, or `rediss://` with TLS. */
  readonly url: string;
  readonly pid: number | undefined;
  /** SIGKILL, as a crash: connections drop without a goodbye. */
  kill(): Promise<void>;
  /** Starts again on the same port (after kill), empty. */
  restart(): Promise<void>;
  /** SIGSTOP: the connections stay open and nothing answers. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** A client of the test's own (plain, or TLS trusting the test CA), closed at teardown. */
  client(): Redis;
  /** `redis-cli` with these arguments against this server; its stdout. */
  cli(...args: string[]): Promise<string>;
  /** Every key (`redis-cli --scan`) with its raw value (GET), for checks of what Redis holds. */
  dump(): Promise<Map<string, Buffer>>;
}

export interface TestRedisOptions {
  /** Serve TLS only, with this server certificate (test/helpers/pki.ts) and CA. */
  tls?: { certFile: string; keyFile: string; caFile: string };
  /** `requirepass`. */
  password?: string;
  /** Extra redis-server arguments, e.g. ['--maxmemory', '1mb']. */
  args?: string[];
  /** Longest wait for "Ready to accept connections" (default 10 s). */
  startTimeoutMs?: number;
}

/** A port the system says is free now (listen on 0, close). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startRedis(t: Test, options: TestRedisOptions = {}): Promise<TestRedis> {
  let port = await freePort();
  let child: ChildProcess | undefined;
  const clients: Redis[] = [];

  const args = (p: number) => [
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
    '--logfile',
    '',
    ...(options.password === undefined ? [] : ['--requirepass', options.password]),
    ...(options.tls
      ? [
          '--port',
          '0',
          '--tls-port',
          String(p),
          '--tls-cert-file',
          options.tls.certFile,
          '--tls-key-file',
          options.tls.keyFile,
          '--tls-ca-cert-file',
          options.tls.caFile,
          '--tls-auth-clients',
          'no',
        ]
      : ['--port', String(p)]),
    ...(options.args ?? []),
  ];

  const launch = (p: number) =>
    new Promise<ChildProcess>((resolve, reject) => {
      const proc = spawn('redis-server', args(p), { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const ms = options.startTimeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`redis-server on port ${p} was not ready within ${ms} ms:\n${out}`));
      }, ms);
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve(proc);
        }
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', onData);
      proc.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`redis-server could not be started (is it installed? .ci/run installs it): ${err.message}`));
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server on port ${p} exited (${code}) before it was ready:\n${out}`));
      });
    });

  const stopped = (proc: ChildProcess) =>
    new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
    });

  // The free port may be taken between our look and redis-server's bind: try another, twice.
  for (let attempt = 0; ; attempt++) {
    try {
      child = await launch(port);
      break;
    } catch (err) {
      if (attempt === 2 || !String(err).includes('Address already in use')) throw err;
      port = await freePort();
    }
  }

  const kill = async () => {
    if (!child) return;
    const proc = child;
    child = undefined;
    if (proc.pid !== undefined) {
      try {
        process.kill(proc.pid, 'SIGCONT'); // a paused one must be able to die
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await stopped(proc);
  };
  t.teardown(async () => {
    for (const c of clients) c.disconnect();
    await kill();
  });

  const scheme = options.tls ? 'rediss' : 'redis';
  const cliArgs = () => [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    ...(options.password === undefined ? [] : ['--no-auth-warning', '-a', options.password]),
    ...(options.tls ? ['--tls', '--cacert', options.tls.caFile] : []),
  ];
  const cli = (...rest: string[]) =>
    new Promise<string>((resolve, reject) => {
      execFile('redis-cli', [...cliArgs(), ...rest], { timeout: 10_000, encoding: 'buffer' }, (err, stdout) =>
        err ? reject(err) : resolve(stdout.toString('latin1')),
      );
    });

  const redis: TestRedis = {
    get port() {
      return port;
    },
    get url() {
      return `${scheme}://127.0.0.1:${port}/0`;
    },
    get pid() {
      return child?.pid;
    },
    kill,
    async restart() {
      await kill();
      child = await launch(port);
    },
    pause() {
      if (child?.pid !== undefined) process.kill(child.pid, 'SIGSTOP');
    },
    resume() {
      if (child?.pid !== undefined) process.kill(child.pid, 'SIGCONT');
    },
    client() {
      const c = new Redis({
        host: '127.0.0.1',
        port,
        ...(options.password === undefined ? {} : { password: options.password }),
        ...(options.tls ? { tls: { ca: [readFileSync(options.tls.caFile, 'utf8')] } } : {}),
        maxRetriesPerRequest: 1,
      });
      c.on('error', () => {}); // the tests kill this server on purpose
      clients.push(c);
      return c;
    },
    cli,
    async dump() {
      const keys = (await cli('--scan')).split('\n').filter((k) => k !== '');
      const c = redis.client();
      const out = new Map<string, Buffer>();
      for (const key of keys) {
        const value = await c.getBuffer(key);
        if (value !== null) out.set(key, value);
      }
      return out;
    },
  };
  return redis;
}
