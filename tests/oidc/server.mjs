// The OpenID Connect provider the sign-in tests run: npm's certified oidc-provider on loopback,
// with one confidential client and two test accounts, signed in through the provider's own login
// page (devInteractions: the provider's built-in login and consent pages, for test servers only).
//
//   node server.mjs PORT        (or OIDC_PORT=PORT node server.mjs)
// Environment: OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI (the app's /oauth2callback).
// Never for production: the accounts below take any password.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] || process.env.OIDC_PORT);
const { OIDC_CLIENT_ID: clientId, OIDC_CLIENT_SECRET: clientSecret, OIDC_REDIRECT_URI: redirectUri } = process.env;
if (!port || !clientId || !clientSecret || !redirectUri) {
  console.error('usage: OIDC_CLIENT_ID=.. OIDC_CLIENT_SECRET=.. OIDC_REDIRECT_URI=.. node server.mjs PORT');
  process.exit(2);
}

// login name on the provider's page -> the claims it releases. `sub` is the stable subject the client
// sees: a pairwise identifier, as Entra ID gives each application its own, never the login name.
const ACCOUNTS = {
  'ada.reader': {
    sub: 'f3b0c2a4-7d1e-4c55-9a61-0a2d6c1e9b17', name: 'Ada Reader', email: 'ada.reader@hospital.test', groups: ['radiologists'],
  },
  'sam.viewer': {
    sub: '0c9e7a51-3b2f-4e8d-8f40-5d6a2b7c1e03', name: 'Sam Viewer', email: 'sam.viewer@hospital.test', groups: ['students'],
  },
};

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    subject_type: 'pairwise',
  }],
  subjectTypes: ['public', 'pairwise'],
  pairwiseIdentifier: async (ctx, accountId) => ACCOUNTS[accountId].sub,
  claims: {
    openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups'],
  },
  // Streamlit reads the reader from the ID token, so the profile and email claims go in it
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ ...account, sub: id, email_verified: true }) };
  },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  jwks: { keys: [{ ...signingKey, kid: 'test-signing-key', use: 'sig', alg: 'RS256' }] },
  features: { devInteractions: { enabled: true } },
};

const provider = new Provider(`http://127.0.0.1:${port}`, configuration);
provider.on('server_error', (ctx, error) => console.error('server_error', error));
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on http://127.0.0.1:${port}`));
