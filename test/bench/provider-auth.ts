/**
 * What provider authentication adds to one introspection call, measured in-process:
 * signing a private_key_jwt client assertion per algorithm, and building the TLS context of a
 * provider with a ca_file (the system CAs plus its own), which provider-fetch.ts does once per
 * provider instead of once per connection. Run: `npx tsx test/bench/provider-auth.ts`.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createSecureContext, rootCertificates } from 'node:tls';
import type { ProviderKeys, SigningAlg } from '../../src/config/keys.js';
import type { ProviderConfig } from '../../src/config/schema.js';
import { clientAuthFor } from '../../src/provider/client-auth.js';

const ROUNDS = 2000;
const as = { issuer: 'https://op.example' };
const client = { client_id: 'tollgate' };
const config = { auth_method: 'private_key_jwt' } as ProviderConfig;

async function main() {
  const keys: [SigningAlg, KeyObject][] = [
    ['ES256', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey],
    ['RS256', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey],
    ['PS256', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey],
    ['EdDSA', generateKeyPairSync('ed25519').privateKey],
  ];
  for (const [alg, key] of keys) {
    const providerKeys: ProviderKeys = { signingKey: { key, kid: 'k', alg }, tls: undefined };
    const auth = clientAuthFor(config, providerKeys);
    await auth(as, client, new URLSearchParams(), new Headers()); // imports the key once
    const start = performance.now();
    for (let i = 0; i < ROUNDS; i++) await auth(as, client, new URLSearchParams(), new Headers());
    console.log(`${alg}: ${(((performance.now() - start) / ROUNDS) * 1000).toFixed(0)} µs per client assertion`);
  }
  const contexts = 50;
  const start = performance.now();
  for (let i = 0; i < contexts; i++) createSecureContext({ ca: [...rootCertificates] });
  const ms = (performance.now() - start) / contexts;
  console.log(`TLS context with ${rootCertificates.length} system CAs + ca_file: ${ms.toFixed(2)} ms (once per provider)`);
}

void main();
