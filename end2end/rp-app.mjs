// A customer's web application for the end-to-end tests: it signs its users in through
// Gatehouse with panva's certified `openid-client` (authorization code + PKCE, state, nonce, the
// RFC 9207 `iss` check, ID token validation against the published keys), calls userinfo,
// refreshes its tokens and signs out through RP-initiated logout. Two applications are served:
// "Example Shop" (first party) at / and "Partner Portal" (third party, asks consent) at /partner.
// `/login?acr=…&prompt=…` passes `acr_values` and `prompt` on.
// Their client ids and secrets come from `gatehouse apps add` (files in the run folder).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import * as client from 'openid-client';

const port = Number(process.env.GATEHOUSE_E2E_RP_PORT || 2628);
const issuer = process.env.GATEHOUSE_E2E_ISSUER || 'http://localhost:3100';
const runDir = process.env.GATEHOUSE_E2E_RUN_DIR || path.join(import.meta.dirname, '.run');
const base = `http://localhost:${port}`;

const apps = {
  '': { name: 'Example Shop', log: 'apps-shop.log', secret: 'shop-secret' },
  '/partner': { name: 'Partner Portal', log: 'apps-partner.log', secret: 'partner-secret' },
};
const configs = new Map();
// Every authorization code and token received, for the log check after the suite.
const remember = (...secrets) => fs.appendFileSync(path.join(runDir, 'rp-tokens'),
  secrets.filter(Boolean).map((t) => `${t}\n`).join(''));
const sessions = new Map();

async function configFor(prefix) {
  if (configs.has(prefix)) return configs.get(prefix);
  const app = apps[prefix];
  const log = fs.readFileSync(path.join(runDir, app.log), 'utf8');
  const clientId = /client id: (\S+)/.exec(log)[1];
  const secret = fs.readFileSync(path.join(runDir, app.secret), 'utf8').trim();
  const config = await client.discovery(
    new URL(issuer),
    clientId,
    { id_token_signed_response_alg: 'ES256' },
    client.ClientSecretBasic(secret),
    // Gatehouse runs on http://localhost in the tests.
    { execute: [client.allowInsecureRequests] },
  );
  configs.set(prefix, config);
  return config;
}

const escape = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head>`
    + `<body><main><h1>${escape(title)}</h1>${body}</main></body></html>`);
}

function redirect(res, location, cookie) {
  const headers = { location, 'cache-control': 'no-store' };
  if (cookie) headers['set-cookie'] = cookie;
  res.writeHead(302, headers);
  res.end();
}

function sessionOf(req, res) {
  const match = /(?:^|;\s*)rp_sid=([A-Za-z0-9_-]+)/.exec(req.headers.cookie || '');
  if (match && sessions.has(match[1])) return [match[1], sessions.get(match[1]), null];
  const sid = crypto.randomBytes(16).toString('base64url');
  const s = {};
  sessions.set(sid, s);
  return [sid, s, `rp_sid=${sid}; Path=/; HttpOnly; SameSite=Lax`];
}

function signedInPage(res, app, s) {
  const c = s.claims;
  page(res, 200, app.name, `
    <p>Signed in as <strong>${escape(s.userinfo.email)}</strong> (${escape(s.userinfo.name)})</p>
    <dl>
      <dt>Subject</dt><dd data-testid="sub">${escape(c.sub)}</dd>
      <dt>Methods</dt><dd data-testid="amr">${escape((c.amr || []).join(' '))}</dd>
      <dt>Assurance</dt><dd data-testid="acr">${escape(c.acr)}</dd>
      <dt>Refreshes</dt><dd data-testid="refreshes">${s.refreshes || 0}</dd>
    </dl>
    <form method="post" action="${s.prefix}/refresh"><button type="submit">Refresh tokens</button></form>
    <form method="post" action="${s.prefix}/logout"><button type="submit">Sign out</button></form>`);
}

async function handle(req, res) {
  const url = new URL(req.url, base);
  if (url.pathname === '/healthz') {
    res.writeHead(200);
    res.end('ok');
    return;
  }
  const prefix = url.pathname.startsWith('/partner') ? '/partner' : '';
  const app = apps[prefix];
  const route = url.pathname.slice(prefix.length) || '/';
  const [, all, cookie] = sessionOf(req, res);
  all[prefix] ??= { prefix };
  const s = all[prefix];
  const config = await configFor(prefix);

  if (route === '/' && req.method === 'GET') {
    if (s.tokens) return signedInPage(res, app, s);
    return page(res, 200, app.name, `<p>You are not signed in.</p><p><a href="${prefix}/login">Sign in with Gatehouse</a></p>`);
  }
  if (route === '/login' && req.method === 'GET') {
    s.verifier = client.randomPKCECodeVerifier();
    s.state = client.randomState();
    s.nonce = client.randomNonce();
    // `/login?acr=…&prompt=…` asks for an assurance level or a silent sign-in, as apps do.
    const extra = {};
    if (url.searchParams.get('acr')) extra.acr_values = url.searchParams.get('acr');
    if (url.searchParams.get('prompt')) extra.prompt = url.searchParams.get('prompt');
    const target = client.buildAuthorizationUrl(config, {
      redirect_uri: `${base}${prefix}/callback`,
      scope: 'openid profile email',
      code_challenge: await client.calculatePKCECodeChallenge(s.verifier),
      code_challenge_method: 'S256',
      state: s.state,
      nonce: s.nonce,
      ...extra,
    });
    return redirect(res, target.href, cookie);
  }
  if (route === '/callback' && req.method === 'GET') {
    try {
      remember(url.searchParams.get('code'));
      const tokens = await client.authorizationCodeGrant(config, url, {
        pkceCodeVerifier: s.verifier,
        expectedState: s.state,
        expectedNonce: s.nonce,
        idTokenExpected: true,
      });
      remember(tokens.access_token, tokens.refresh_token);
      s.tokens = tokens;
      s.claims = tokens.claims();
      s.idToken = tokens.id_token;
      s.userinfo = await client.fetchUserInfo(config, tokens.access_token, s.claims.sub);
      return redirect(res, `${prefix}/`, cookie);
    } catch (e) {
      const detail = e.error ? `${e.error}` : e.code || e.name;
      return page(res, 400, 'Sign-in failed', `<p role="alert">The application could not sign you in: ${escape(detail)}</p>`);
    }
  }
  if (route === '/refresh' && req.method === 'POST') {
    try {
      const tokens = await client.refreshTokenGrant(config, s.tokens.refresh_token);
      remember(tokens.access_token, tokens.refresh_token);
      s.tokens = tokens;
      if (tokens.id_token) {
        s.idToken = tokens.id_token;
        s.claims = tokens.claims();
      }
      s.userinfo = await client.fetchUserInfo(config, tokens.access_token, s.claims.sub);
      s.refreshes = (s.refreshes || 0) + 1;
      return redirect(res, `${prefix}/`, cookie);
    } catch (e) {
      return page(res, 400, 'Refresh failed', `<p role="alert">${escape(e.error || e.code || e.name)}</p>`);
    }
  }
  if (route === '/logout' && req.method === 'POST') {
    s.logoutState = client.randomState();
    const target = client.buildEndSessionUrl(config, {
      id_token_hint: s.idToken,
      post_logout_redirect_uri: `${base}${prefix}/signed-out`,
      state: s.logoutState,
    });
    delete s.tokens;
    return redirect(res, target.href, cookie);
  }
  if (route === '/signed-out' && req.method === 'GET') {
    const ok = url.searchParams.get('state') === s.logoutState;
    return page(res, ok ? 200 : 400, ok ? `Signed out of ${app.name}` : 'Unexpected sign-out', '<p><a href="./">Back</a></p>');
  }
  page(res, 404, 'Not found', '');
}

http
  .createServer((req, res) => {
    handle(req, res).catch((e) => page(res, 500, 'Error', `<p>${escape(e.message)}</p>`));
  })
  .listen(port, '127.0.0.1', () => console.log(`rp-app on ${base}`));
