// An OpenID provider for the single sign-on test: the certified oidc-provider with one
// confidential client and its development login form, which takes any login and password.
// The login names who signs in: "grace" is in the support-leads group, "ada" in
// support-agents, anyone else in sales (no Farsight role).
//
// Environment: REDIRECT_URI (Farsight's /v1/auth/callback). Prints {"issuer": URL} once it
// listens on a free loopback port, then serves until killed.

import http from 'node:http';
import Provider from 'oidc-provider';

const redirect = process.env.REDIRECT_URI;
if (!redirect) throw new Error('REDIRECT_URI is not set');

const GROUPS = { grace: ['support-leads'], ada: ['support-agents'] };
const NAMES = { grace: 'Grace Hopper', ada: 'Ada Lovelace' };

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'farsight',
        client_secret: 'farsight-test-secret',
        redirect_uris: [redirect],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    claims: { openid: ['sub'], profile: ['name'], groups: ['groups'] },
    // The groups go in the ID token, which is all Farsight reads.
    conformIdTokenClaims: false,
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, name: NAMES[sub] ?? sub, groups: GROUPS[sub] ?? ['sales'] }),
    }),
    cookies: { keys: ['farsight-test-cookie-key'] },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
