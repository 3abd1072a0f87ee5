// A real OpenID Connect provider for the single sign-on tests (tests/sso/, tests/e2e/test_sso.py):
// the certified `oidc-provider` package with its built-in login and consent pages
// (devInteractions: any password is accepted for a login listed in the accounts file).
//
//   node provider.mjs <port>      (or OIDC_TEST_PORT): a free port on 127.0.0.1
//
// Environment:
//   OIDC_TEST_ACCOUNTS          path of a JSON file {"<login>": {"email": ..., "groups": [...], ...}};
//                               read again on every lookup, so a test can change a user's
//                               groups between two logins
//   OIDC_TEST_CLIENT_ID / _SECRET / _REDIRECT_URIS / _POST_LOGOUT_REDIRECT_URIS
//                               the relying party under test (URIs comma-separated)
//   OIDC_TEST_OTHER_CLIENT_ID / _SECRET / _REDIRECT_URIS
//                               a second client: its tokens carry another audience
//   OIDC_TEST_ID_TOKEN_TTL      seconds an ID token is valid (default 60)
//   OIDC_TEST_DOMAINS_CLAIM     name of the claim that carries the reviewer's domains
//   OIDC_TEST_RP_LOGOUT         0: no end_session_endpoint (a provider without RP-initiated logout)
//
// Prints one line `oidc-provider ready <issuer>` on stdout once it listens.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const env = process.env;
const port = Number(process.argv[2] ?? env.OIDC_TEST_PORT);
if (!Number.isInteger(port) || port <= 0) {
  // The issuer names the port, so it must be known before listening (no port 0).
  console.error('usage: node provider.mjs <port>');
  process.exit(2);
}
const host = '127.0.0.1';
const list = (value) => (value || '').split(',').map((s) => s.trim()).filter(Boolean);
const domainsClaim = env.OIDC_TEST_DOMAINS_CLAIM || 'coachdesk_domains';

function readAccounts() {
  // Re-read on every call: the tests edit this file between logins.
  return JSON.parse(readFileSync(env.OIDC_TEST_ACCOUNTS, 'utf8'));
}

// A fresh signing key per run: nothing outlives the test session.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'test-key-1' };

const clients = [
  {
    client_id: env.OIDC_TEST_CLIENT_ID,
    client_secret: env.OIDC_TEST_CLIENT_SECRET,
    redirect_uris: list(env.OIDC_TEST_REDIRECT_URIS),
    post_logout_redirect_uris: list(env.OIDC_TEST_POST_LOGOUT_REDIRECT_URIS),
    token_endpoint_auth_method: 'client_secret_post',
  },
];
if (env.OIDC_TEST_OTHER_CLIENT_ID) {
  clients.push({
    client_id: env.OIDC_TEST_OTHER_CLIENT_ID,
    client_secret: env.OIDC_TEST_OTHER_CLIENT_SECRET,
    redirect_uris: list(env.OIDC_TEST_OTHER_REDIRECT_URIS),
    token_endpoint_auth_method: 'client_secret_post',
  });
}

const configuration = {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups', domainsClaim],
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: env.OIDC_TEST_RP_LOGOUT !== '0' },
  },
  // The code flow's ID token carries only the protocol claims; the rest come from userinfo,
  // as with most real providers.
  conformIdTokenClaims: true,
  ttl: {
    IdToken: Number(env.OIDC_TEST_ID_TOKEN_TTL || 60),
    AccessToken: 600,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  async findAccount(ctx, sub) {
    const account = readAccounts()[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        const fresh = readAccounts()[sub] ?? account;
        return { sub, ...fresh };
      },
    };
  },
};

const issuer = `http://${host}:${port}`;
const provider = new Provider(issuer, configuration);
const server = provider.listen(port, host, () => {
  console.log(`oidc-provider ready ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
