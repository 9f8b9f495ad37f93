// The OpenID provider the OIDC browser tests start: npm `oidc-provider` (OpenID Certified), pinned in
// package-lock.json and installed by scripts/test-deps.sh. Usage: node provider.mjs PORT CLIENT_ID SECRET REDIRECT
// Anyone may sign in with any password (the provider's dev interactions); claims come from ACCOUNTS below.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const ACCOUNTS = {
  alice: { email: 'alice@acme.test', groups: ['acme-admins'] },
  bob: { email: 'bob@acme.test', groups: ['staff'] },
  mallory: { email: 'mallory@evil.test', groups: [] },
};

// a signing key of its own for each run (not the package's development keys)
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'payrisk-test', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'groups', 'profile'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, email_verified: true, ...(ACCOUNTS[id] ?? { email: `${id}@unknown.test`, groups: [] }) }),
  }),
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['payrisk-test-cookie-key'] },
});
provider.listen(Number(port), '127.0.0.1', () => console.log(`ready ${issuer}`));
