// A real OpenID Connect provider for the end-to-end tests: panva's certified `oidc-provider`,
// on loopback, with one confidential client (Gatehouse) and test users. Its development
// sign-in form accepts any login; a login that is an email address is a test user with that
// address (verified) and a name made from it. Every other setting is the provider's default:
// RS256 ID tokens, PKCE, the `iss` authorization response parameter (RFC 9207).
import Provider from 'oidc-provider';

const port = Number(process.env.GATEHOUSE_E2E_IDP_PORT || 2627);
const secret = process.env.GATEHOUSE_E2E_IDP_SECRET || 'e2e-idp-secret';
const redirect = process.env.GATEHOUSE_E2E_IDP_REDIRECT || 'http://localhost:3100/sign-in/external/callback';

function claimsFor(login) {
  const email = login.includes('@') ? login.toLowerCase() : `${login}@idp.example`;
  const local = email.split('@')[0];
  const name = local
    .split(/[._-]+/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join(' ');
  return { sub: `user-${Buffer.from(email).toString('hex')}`, email, email_verified: true, name };
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'gatehouse-e2e',
    client_secret: secret,
    redirect_uris: [redirect],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // The development form's login is the account id.
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return claimsFor(id); } };
  },
  cookies: { keys: ['gatehouse-e2e-idp-cookie-key'] },
  features: { devInteractions: { enabled: true } },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on http://127.0.0.1:${port}`);
});
