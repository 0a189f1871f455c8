/**
 * The built binary (`node dist/cli.js`, built by `npm test` first), as a user runs it: check-config,
 * a bad configuration at start, zero-file mode and file mode end to end against a real OpenID
 * provider (oidc-provider) and a recording upstream, and SIGTERM. Children listen on 127.0.0.1
 * port 0 and say where in their `tollgate listening` log line; every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { startOidcProvider, TOLLGATE_CLIENT } from '../../dev/oidc-provider.js';
import { bearer, request } from '../helpers/http.js';
import { refusingPort } from '../helpers/ports.js';
import { startUpstream } from '../helpers/upstream.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/cli.js');
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does it first)`);

/** A recognisable secret that must never be printed. */
const SECRET = 'S3CRET-e2e-4c1d9b';

interface Child {
  readonly process: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Settles with the exit code (or the signal's name) once the process has exited. */
  readonly exited: Promise<number | string>;
}

/** Runs the binary with only the environment given (plus PATH), killed at teardown if still running. */
function run(t: Test, args: string[], env: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { process: child, stdout: () => out, stderr: () => err, exited };
}

async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits (bounded) for the `tollgate listening` line, then polls /readyz until 200 (bounded). */
async function ready(child: Child): Promise<{ proxy: string; admin: string }> {
  let listening: { proxy: string; admin: string } | undefined;
  for (let i = 0; i < 200 && listening === undefined; i++) {
    for (const line of child.stdout().split('\n')) {
      if (!line.includes('tollgate listening')) continue;
      listening = JSON.parse(line) as { proxy: string; admin: string };
    }
    if (listening === undefined) {
      if (child.process.exitCode !== null) throw new Error(`tollgate exited early:\n${child.stderr()}${child.stdout()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  if (listening === undefined) throw new Error(`no 'tollgate listening' line within 10 s:\n${child.stdout()}${child.stderr()}`);
  for (let i = 0; i < 100; i++) {
    const res = await request(`${listening.admin}/readyz`, { timeoutMs: 2000 });
    if (res.status === 200) return listening;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`/readyz did not answer 200 within 100 tries:\n${child.stdout()}`);
}

t.test('check-config', async (t) => {
  const dir = t.testdir({
    'good.yaml': `
listen: "127.0.0.1:0"
upstream: { url: "http://127.0.0.1:8080" }
providers:
  - name: acme
    # a closed port: check-config never contacts a provider without --discover
    issuer: "http://127.0.0.1:9"
    client_id: tollgate
    client_secret: "\${ACME_SECRET}"
  - name: beta
    issuer: "https://login.beta.example"
    client_id: tollgate
    client_secret_file: beta.secret
routes:
  - match: { path_prefix: /health }
    public: true
`,
    'beta.secret': `${SECRET}\n`,
    'bad.yaml': `
listen: "nowhere"
upstream: { url: "http://127.0.0.1:8080" }
providers:
  - name: acme
    issuer: "http://login.acme.example"
    client_id: tollgate
    client_secret: "${SECRET}"
  - name: beta
    issuer: "https://login.beta.example"
    clent_id: tollgate
routes:
  - providers: [nope]
`,
    'broken.yaml': `providers:\n  - client_secret: "${SECRET}\n`,
  });

  t.test('a good file: exit 0 and a summary', async (t) => {
    const child = run(t, ['check-config', '--config', path.join(dir, 'good.yaml')], { ACME_SECRET: SECRET });
    t.equal(await within(10_000, 'check-config exiting', child.exited), 0);
    t.match(child.stdout(), /configuration OK/);
    t.match(child.stdout(), /acme <http:\/\/127\.0\.0\.1:9>/);
    t.match(child.stdout(), /beta <https:\/\/login\.beta\.example>/);
    t.match(child.stdout(), /routes: 1/);
    t.notMatch(child.stdout() + child.stderr(), SECRET, 'no secret printed');
  });

  t.test('a bad file: exit 1 and every problem by path on stderr', async (t) => {
    const child = run(t, ['check-config', '--config', path.join(dir, 'bad.yaml')]);
    t.equal(await within(10_000, 'check-config exiting', child.exited), 1);
    const err = child.stderr();
    for (const line of [
      'listen: expected host:port',
      'providers[0].issuer: http:// is accepted only for loopback hosts unless allow_http is true',
      'providers[1].clent_id: unknown key',
      'providers[1].client_id: required',
      'providers[1].client_secret: required with auth_method client_secret_basic',
      'routes[0].providers[0]: unknown provider nope',
    ]) {
      t.ok(err.includes(`  ${line}\n`), `stderr lists: ${line}`);
    }
    t.match(err, /invalid configuration \(6 problems\)/);
    t.equal(child.stdout(), '', 'nothing on stdout');
    t.notMatch(err, SECRET, 'no secret printed');
  });

  t.test('a YAML syntax error on a secret line does not print the secret', async (t) => {
    const child = run(t, ['check-config', '--config', path.join(dir, 'broken.yaml')]);
    t.equal(await within(10_000, 'check-config exiting', child.exited), 1);
    t.match(child.stderr(), /broken\.yaml: YAML: /);
    t.notMatch(child.stderr(), SECRET);
  });

  t.test('starting with a bad file: exit 1 with the problems', async (t) => {
    const child = run(t, ['--config', path.join(dir, 'bad.yaml')]);
    t.equal(await within(10_000, 'tollgate exiting', child.exited), 1);
    t.match(child.stderr(), /providers\[1\]\.clent_id: unknown key/);
    t.notMatch(child.stdout() + child.stderr(), SECRET);
  });

  t.test('TOLLGATE_CONFIG names the file', async (t) => {
    const child = run(t, ['check-config'], { TOLLGATE_CONFIG: path.join(dir, 'bad.yaml') });
    t.equal(await within(10_000, 'check-config exiting', child.exited), 1);
    t.match(child.stderr(), /routes\[0\]\.providers\[0\]: unknown provider nope/);
  });

  t.test('zero-file mode without its variables: exit 1 naming them', async (t) => {
    const child = run(t, ['check-config']);
    t.equal(await within(10_000, 'check-config exiting', child.exited), 1);
    t.match(child.stderr(), /TOLLGATE_UPSTREAM_URL: required/);
    t.match(child.stderr(), /TOLLGATE_ISSUER: required/);
  });
});

t.test('end to end through the binary, against a real provider', async (t) => {
  const op = await startOidcProvider({ extraTokenClaims: (clientId) => ({ sub: `service:${clientId}` }) });
  const upstream = await startUpstream();
  t.teardown(async () => {
    await Promise.all([op.close(), upstream.close()]);
  });

  /** A minted token is allowed with the identity headers; a random one is refused; nothing leaks. */
  const exercise = async (t: Test, child: Child, proxy: string, provider: string) => {
    const token = await op.mintToken(undefined, undefined, 'orders:read orders:write');
    const before = upstream.requests.length;
    const res = await request(`${proxy}/orders/7?x=1`, { headers: bearer(token) });
    t.equal(res.status, 200);
    t.equal(upstream.requests.length, before + 1);
    const seen = upstream.requests[upstream.requests.length - 1]!;
    t.equal(seen.url, '/orders/7?x=1');
    t.same(seen.headers['x-auth-subject'], ['service:demo-app']);
    t.same(seen.headers['x-auth-client-id'], ['demo-app']);
    t.same(seen.headers['x-auth-scope'], ['orders:read orders:write']);
    t.same(seen.headers['x-auth-issuer'], [op.issuer]);
    t.match(seen.headers['x-auth-expires-at']?.[0], /^\d+$/);
    t.same(seen.headers['x-auth-provider'], [provider]);
    t.equal(seen.headers.authorization, undefined);

    const refused = await request(`${proxy}/orders/7`, { headers: bearer('random-token-123') });
    t.equal(refused.status, 401);
    t.match(refused.headers['www-authenticate'], /error="invalid_token"/);
    t.equal(upstream.requests.length, before + 1, 'the refused request was not forwarded');

    const none = await request(`${proxy}/orders/7`);
    t.equal(none.status, 401);
    t.equal(none.headers['www-authenticate'], 'Bearer realm="tollgate"');
    return token;
  };

  const waitForLog = async (child: Child, msg: string) => {
    for (let i = 0; i < 100 && !child.stdout().includes(`"msg":"${msg}"`); i++) await new Promise((r) => setTimeout(r, 50));
    return child.stdout().includes(`"msg":"${msg}"`);
  };

  t.test('check-config --discover asks each provider for its metadata', async (t) => {
    const gone = `http://127.0.0.1:${await refusingPort(t)}`;
    const dir = t.testdir({
      'tollgate.yaml': `
upstream: { url: "${upstream.url}" }
providers:
  - { name: real, issuer: "${op.issuer}", client_id: tollgate, client_secret: "${TOLLGATE_CLIENT.client_secret}" }
  - { name: wrong, issuer: "${op.issuer}", client_id: tollgate, client_secret: "${SECRET}" }
  - { name: gone, issuer: "${gone}", client_id: tollgate, client_secret: x, timeout_ms: 500 }
`,
    });
    const child = run(t, ['check-config', '--discover', '--config', path.join(dir, 'tollgate.yaml')]);
    t.equal(await within(15_000, 'check-config --discover exiting', child.exited), 1, 'exit 1: two providers failed');
    t.match(child.stdout(), `real: introspection at ${op.issuer}/token/introspection (credentials accepted)`);
    // Issue 18, failure 6: a wrong secret passed --discover; the credential probe now says so.
    t.match(
      child.stdout(),
      /wrong: discovery failed: credential probe: HTTP 401\b.*the provider rejected tollgate's client credentials; check client_id and the secret\n/,
    );
    t.notMatch(child.stdout() + child.stderr(), SECRET, 'the secret is not printed');
    t.match(child.stdout(), /gone: discovery failed: /);
  });

  t.test('zero-file mode: environment variables only', async (t) => {
    const child = run(t, [], {
      TOLLGATE_LISTEN: '127.0.0.1:0',
      TOLLGATE_ADMIN_LISTEN: '127.0.0.1:0',
      TOLLGATE_UPSTREAM_URL: upstream.url,
      TOLLGATE_ISSUER: op.issuer,
      TOLLGATE_CLIENT_ID: TOLLGATE_CLIENT.client_id,
      TOLLGATE_CLIENT_SECRET: TOLLGATE_CLIENT.client_secret,
    });
    const { proxy, admin } = await within(15_000, 'readiness', ready(child));
    const token = await exercise(t, child, proxy, 'default');
    t.ok(await waitForLog(child, 'request'), 'access lines written');

    // SIGTERM: /readyz turns 503 at once while requests are still served (drain_delay_s 5 here);
    // a second signal stops at once.
    child.process.kill('SIGTERM');
    let readyz = 200;
    for (let i = 0; i < 100 && readyz === 200; i++) {
      readyz = (await request(`${admin}/readyz`, { timeoutMs: 2000 })).status;
      if (readyz === 200) await new Promise((r) => setTimeout(r, 20));
    }
    t.equal(readyz, 503, '/readyz answers 503 while draining');
    t.equal((await request(`${proxy}/orders`, { headers: bearer(token) })).status, 200, 'still served while draining');
    child.process.kill('SIGTERM');
    t.equal(await within(10_000, 'exit after a second SIGTERM', child.exited), 0);

    const output = child.stdout() + child.stderr();
    t.notOk(output.includes(token), 'the token is in no log line');
    t.notOk(output.includes(TOLLGATE_CLIENT.client_secret), 'the client secret is in no log line');
    const lines = child
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const access = lines.filter((l) => l.msg === 'request');
    t.ok(access.length >= 3, 'one access line per request');
    t.match(access[0], { method: 'GET', path: '/orders/7', status: 200, outcome: 'allowed', provider: 'default' });
  });

  t.test('file mode, and SIGTERM → exit 0', async (t) => {
    const dir = t.testdir({
      'tollgate.yaml': `
listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
upstream:
  url: "${upstream.url}"
providers:
  - name: real
    issuer: "${op.issuer}"
    client_id: "\${CLIENT_ID}"
    client_secret_file: secret.txt
    auth_method: client_secret_post
shutdown: { drain_delay_s: 0, timeout_s: 5 }
`,
      'secret.txt': `${TOLLGATE_CLIENT.client_secret}\n`,
    });
    const child = run(t, ['--config', path.join(dir, 'tollgate.yaml')], { CLIENT_ID: TOLLGATE_CLIENT.client_id });
    const { proxy } = await within(15_000, 'readiness', ready(child));
    const token = await exercise(t, child, proxy, 'real');
    child.process.kill('SIGTERM');
    t.equal(await within(10_000, 'exit after SIGTERM', child.exited), 0, 'exit code 0 after a clean shutdown');
    t.match(child.stdout(), /"msg":"stopped"/);
    t.notOk((child.stdout() + child.stderr()).includes(token), 'the token is in no log line');
    t.notOk((child.stdout() + child.stderr()).includes(TOLLGATE_CLIENT.client_secret), 'the secret is in no log line');
  });
});
