// An independent OpenID provider for the gateway's end-to-end tests: the certified
// `oidc-provider` package (pinned in package.json), configured here with one
// confidential client that must use PKCE, a fresh RS256 signing key, and accounts
// whose ID tokens carry the gateway's claims (`roles`, `township`, `department`).
// People sign in through oidc-provider's development login and consent forms, which
// a plain HTTP client can fill in.
//
// Usage: node provider.mjs [--port N]       (default 0: any free port)
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI: the one client (required).
// Prints `oidc-provider ready at http://127.0.0.1:PORT` once it listens; the test
// reads the issuer from that line. Stops on SIGTERM/SIGINT or when stdin closes.

import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

function setting(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return value;
}

function portArgument() {
  const at = process.argv.indexOf('--port');
  const raw = at >= 0 ? process.argv[at + 1] : process.env.OIDC_PORT ?? '0';
  const port = Number.parseInt(raw ?? '', 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port: not a port: ${raw}`);
    process.exit(2);
  }
  return port;
}

const clientId = setting('OIDC_CLIENT_ID');
const clientSecret = setting('OIDC_CLIENT_SECRET');
const redirectUri = setting('OIDC_REDIRECT_URI');

// The people who can sign in (the login form's "login" field is the account id).
// Their claims are the gateway's own, as its API tokens carry them.
const ACCOUNTS = {
  'clerk-1': { roles: ['clerk'], township: '139901101' },
  'dept-admin-1': { roles: ['dept_admin'], department: 'county-psb' },
  // Someone the provider knows but the gateway gives no role.
  'resident-1': {},
};

// RS256, not ES256: the gateway accepts an ECDSA signature only in its low-S form,
// and Node.js (OpenSSL) does not normalise S, so half of its ES256 tokens would be
// refused.
// Generated as PEM and read back before it becomes a JWK: exporting the very key
// object generateKeyPairSync returned can deadlock Node.js 20 when a garbage
// collection runs during the export (seen as a provider that never gets ready).
const { privateKey: privatePem } = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  publicKeyEncoding: { type: 'spki', format: 'pem' },
});
const signingKey = {
  ...createPrivateKey(privatePem).export({ format: 'jwk' }),
  kid: 'test-rs256-1',
  use: 'sig',
  alg: 'RS256',
};

const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  // Every authorization request must carry a PKCE S256 challenge.
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  // The gateway's claims come with the `openid` scope and go into the ID token
  // itself (not only the userinfo endpoint).
  claims: { openid: ['sub', 'roles', 'township', 'department'] },
  conformIdTokenClaims: false,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  async findAccount(_ctx, id) {
    const claims = ACCOUNTS[id];
    if (claims === undefined) {
      return undefined;
    }
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...claims };
      },
    };
  },
};

const port = portArgument();
const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  server.on('request', provider.callback());
  console.log(`oidc-provider ready at ${issuer}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
