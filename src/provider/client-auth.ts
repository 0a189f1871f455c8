/**
 * How tollgate proves who it is to a provider and what it asks the provider to prove back
 * (SPEC §2 `auth_method`, `introspection_response`): a shared secret (RFC 6749 §2.3.1), a signed
 * client assertion (RFC 7523 `private_key_jwt`), a client certificate (RFC 8705 mutual TLS: the
 * certificate itself travels on the connection, see provider-fetch.ts), or nothing; and, with
 * `introspection_response: jwt`, a signed introspection answer (RFC 9701).
 */
import { webcrypto } from 'node:crypto';
import * as oidc from 'openid-client';
import type { ClientSigningKey, ProviderKeys, SigningAlg } from '../config/keys.js';
import type { ProviderConfig } from '../config/schema.js';
import { ProviderHttpError } from './fetch.js';

/** RFC 9701 §5: the media type of a signed introspection answer. */
export const INTROSPECTION_JWT = 'application/token-introspection+jwt';

/** RFC 9701 §6: the algorithm of a signed answer when the client registered none. */
export const DEFAULT_INTROSPECTION_SIGNING_ALG = 'RS256';

export function clientAuthFor(config: ProviderConfig, keys: ProviderKeys): oidc.ClientAuth {
  // A provider with jwt and no client_id never introspects: there is nothing to authenticate.
  if (config.client_id === undefined) return oidc.None();
  switch (config.auth_method) {
    case 'client_secret_basic':
      return config.basic_auth_encoding === 'raw'
        ? rawClientSecretBasic(config.client_id, config.client_secret!)
        : oidc.ClientSecretBasic(config.client_secret!);
    case 'client_secret_post':
      return oidc.ClientSecretPost(config.client_secret!);
    case 'private_key_jwt':
      return privateKeyJwt(keys.signingKey!);
    case 'tls_client_auth':
    case 'self_signed_tls_client_auth':
      // The certificate on the connection authenticates; the body names the client (RFC 8705 §2).
      return oidc.TlsClientAuth();
    case 'none':
      return oidc.None();
  }
}

/**
 * `basic_auth_encoding: raw`: Basic over the id and secret as they are (RFC 7617). RFC 6749
 * §2.3.1 form-urlencodes both first (`-` becomes `%2D`), which openid-client does; Glewlwyd and
 * LemonLDAP::NG do not decode, so any secret beyond letters and digits was refused there. The
 * header is built once: it is the same for every call.
 */
function rawClientSecretBasic(clientId: string, secret: string): oidc.ClientAuth {
  const authorization = `Basic ${Buffer.from(`${clientId}:${secret}`, 'utf8').toString('base64')}`;
  return (_as, _client, _body, headers) => {
    headers.set('authorization', authorization);
  };
}

/** What openid-client must know of tollgate as a client, beyond its client_id. */
export function clientMetadataFor(config: ProviderConfig): Partial<oidc.ClientMetadata> {
  const mtls = config.auth_method === 'tls_client_auth' || config.auth_method === 'self_signed_tls_client_auth';
  return {
    ...(config.client_secret === undefined ? {} : { client_secret: config.client_secret }),
    // RFC 8705 §5: a provider may serve certificate-authenticated calls on other endpoints.
    ...(mtls ? { use_mtls_endpoint_aliases: true } : {}),
    // openid-client asks for a signed answer (Accept) and checks iss, aud, iat and the algorithm
    // only when this is set; the signature itself is checked once enableNonRepudiationChecks is on.
    ...(config.introspection_response === 'jwt'
      ? { introspection_signed_response_alg: config.introspection_signing_alg ?? DEFAULT_INTROSPECTION_SIGNING_ALG }
      : {}),
  };
}

/** The introspection endpoint tollgate calls: the RFC 8705 alias, with mutual TLS, when the provider has one. */
export function introspectionEndpointOf(config: ProviderConfig, configuration: oidc.Configuration): string | undefined {
  const metadata = configuration.serverMetadata();
  const alias = clientMetadataFor(config).use_mtls_endpoint_aliases
    ? metadata.mtls_endpoint_aliases?.introspection_endpoint
    : undefined;
  return alias ?? metadata.introspection_endpoint;
}

/** Turns on what `clientMetadataFor` cannot: the signature check of signed answers against the provider's JWKS. */
export function applyAnswerChecks(config: ProviderConfig, configuration: oidc.Configuration): void {
  if (config.introspection_response === 'jwt') oidc.enableNonRepudiationChecks(configuration);
}

/**
 * With `introspection_response: jwt`, a plain JSON answer must fail: openid-client accepts one
 * even when it asked for a signed answer, and an attacker on the path (or a misconfigured
 * provider) would then be trusted without a signature. Error answers (non-200) stay JSON.
 */
export function requireSignedAnswers(fetch: oidc.CustomFetch): oidc.CustomFetch {
  return async (url, init) => {
    const response = await fetch(url, init);
    const asked = Object.entries(init.headers).some(([k, v]) => k.toLowerCase() === 'accept' && v === INTROSPECTION_JWT);
    if (asked && response.status === 200) {
      const type = response.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase();
      if (type !== INTROSPECTION_JWT) {
        await response.body?.cancel();
        throw new ProviderHttpError(
          'unsigned_answer',
          `the provider answered ${type ?? 'without a content type'}, not a signed ${INTROSPECTION_JWT} (introspection_response: jwt)`,
        );
      }
    }
    return response;
  };
}

/** WebCrypto parameters of each JWS algorithm (RFC 7518 §3), for importing the signing key. */
const WEBCRYPTO: Record<SigningAlg, webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams | webcrypto.Algorithm> = {
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  RS384: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384' },
  RS512: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-512' },
  PS256: { name: 'RSA-PSS', hash: 'SHA-256' },
  PS384: { name: 'RSA-PSS', hash: 'SHA-384' },
  PS512: { name: 'RSA-PSS', hash: 'SHA-512' },
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  ES384: { name: 'ECDSA', namedCurve: 'P-384' },
  ES512: { name: 'ECDSA', namedCurve: 'P-521' },
  EdDSA: { name: 'Ed25519' },
  Ed25519: { name: 'Ed25519' },
};

/**
 * openid-client signs with a WebCrypto key, whose algorithm decides the JWS `alg`. Importing is
 * asynchronous, so it happens on the first call and is kept. Ed25519 keys sign as `Ed25519` in
 * openid-client; `EdDSA` (the older, more widely accepted name) is set on the header instead.
 */
function privateKeyJwt(signing: ClientSigningKey): oidc.ClientAuth {
  let auth: Promise<oidc.ClientAuth> | undefined;
  const load = async (): Promise<oidc.ClientAuth> => {
    const jwk = signing.key.export({ format: 'jwk' });
    // rsa-pss keys export as plain RSA JWKs; the algorithm below restricts them again.
    const key = await webcrypto.subtle.importKey('jwk', jwk, WEBCRYPTO[signing.alg], false, ['sign']);
    const options =
      signing.alg === 'EdDSA' ? { [oidc.modifyAssertion]: (header: Record<string, unknown>) => void (header.alg = 'EdDSA') } : {};
    return oidc.PrivateKeyJwt(signing.kid === undefined ? { key } : { key, kid: signing.kid }, options);
  };
  return async (as, client, body, headers) => {
    auth ??= load().catch((err: unknown) => {
      auth = undefined; // the next call tries again rather than failing for ever
      throw err;
    });
    const sign = await auth;
    await sign(as, client, body, headers);
  };
}
