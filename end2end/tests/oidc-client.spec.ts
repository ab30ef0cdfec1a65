// A customer's application signs its users in through Gatehouse with a certified OpenID Connect
// client library (`openid-client`, in end2end/rp-app.mjs): authorization code + PKCE through the
// branded sign-in pages, ID token validation, userinfo, refresh and RP-initiated logout; the
// second factor runs before the application gets a code; a third-party application asks consent.
import fs from 'node:fs';
import path from 'node:path';
import {
  test, expect, expectAccessible, signUp, uniqueEmail, codeFor, codeCount, AccountPage, CodePage, SignInPage, PASSWORD, RESET_PASSWORD, type Page,
} from './support';
import { totp, nextCode } from './totp';

const app = `http://localhost:${Number(process.env.GATEHOUSE_E2E_RP_PORT || 2628)}`;

test('an application signs a customer in, refreshes its tokens and signs out', async ({ page }) => {
  const email = uniqueEmail('rp.user');
  await signUp(page, 'Grace Hopper', email);
  await new AccountPage(page).signOut();

  await page.goto(`${app}/`);
  await expect(page.getByRole('heading', { name: 'Example Shop' })).toBeVisible();
  await page.getByRole('link', { name: 'Sign in with Gatehouse' }).click();
  // Gatehouse's own sign-in page is the login UI.
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  await new SignInPage(page).submit(email, PASSWORD);

  await expect(page.getByRole('heading', { name: 'Example Shop' })).toBeVisible();
  await expect(page.getByText(`Signed in as ${email} (Grace Hopper)`)).toBeVisible();
  await expect(page.getByTestId('amr')).toHaveText('pwd');
  await expect(page.getByTestId('acr')).toHaveText('urn:gatehouse:acr:sfa');
  const sub = await page.getByTestId('sub').innerText();

  await page.getByRole('button', { name: 'Refresh tokens' }).click();
  await expect(page.getByTestId('refreshes')).toHaveText('1');
  await expect(page.getByTestId('sub')).toHaveText(sub);
  await page.getByRole('button', { name: 'Refresh tokens' }).click();
  await expect(page.getByTestId('refreshes')).toHaveText('2');

  // Single sign-on: a second sign-in needs no password.
  await page.goto(`${app}/login`);
  await expect(page.getByText(`Signed in as ${email}`)).toBeVisible();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Signed out of Example Shop' })).toBeVisible();
  // The Gatehouse session ended with it.
  await page.goto('/account');
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
});

test('the second factor is asked before the application gets a code, and the application sees it', async ({ page }) => {
  const email = uniqueEmail('rp.mfa');
  await signUp(page, 'Two Factor', email);
  await page.getByRole('link', { name: 'Security info' }).click();
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();
  const secret = (await page.locator('#totp-secret').innerText()).replace(/\s/g, '');
  const enrollCode = totp(secret);
  await page.getByLabel('Code from the app').fill(enrollCode);
  await page.getByRole('button', { name: 'Add authenticator app' }).click();
  await expect(page.getByRole('status')).toContainText('Authenticator app added');
  await page.getByRole('link', { name: 'Back to your account' }).click();
  await new AccountPage(page).signOut();

  await page.goto(`${app}/login`);
  await new SignInPage(page).submit(email, PASSWORD);
  await expect(page.getByRole('heading', { name: 'Two-step verification' })).toBeVisible();
  await page.getByLabel('Authentication code').fill(await nextCode(secret, enrollCode, page));
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByText(`Signed in as ${email}`)).toBeVisible();
  await expect(page.getByTestId('amr')).toHaveText('pwd otp mfa');
  await expect(page.getByTestId('acr')).toHaveText('urn:gatehouse:acr:mfa');
});

test('a third-party application asks consent once; denying returns the person without access', async ({ page }) => {
  const email = uniqueEmail('rp.consent');
  await signUp(page, 'Consent Giver', email);

  await page.goto(`${app}/partner/login`);
  await expect(page.getByRole('heading', { name: 'Partner Portal wants to use your account' })).toBeVisible();
  await expect(page.getByRole('list', { name: 'What the application asks for' }).getByRole('listitem')).toHaveText([
    'Sign you in and know who you are',
    'See your name',
    'See your email address',
  ]);
  await expectAccessible(page);
  await page.getByRole('button', { name: 'Deny' }).click();
  await expect(page.getByRole('alert')).toContainText('access_denied');

  await page.goto(`${app}/partner/login`);
  await page.getByRole('button', { name: 'Allow' }).click();
  await expect(page.getByRole('heading', { name: 'Partner Portal' })).toBeVisible();
  await expect(page.getByText(`Signed in as ${email}`)).toBeVisible();
  // Remembered: the next sign-in goes straight through.
  await page.goto(`${app}/partner/login`);
  await expect(page.getByText(`Signed in as ${email}`)).toBeVisible();
});

test('an authorization request for an unregistered return address shows an error and goes nowhere', async ({ page }) => {
  const email = uniqueEmail('rp.redirect');
  await signUp(page, 'Careful Person', email);
  const log = fs.readFileSync(path.join(__dirname, '..', '.run', 'apps-shop.log'), 'utf8');
  const clientId = /client id: (\S+)/.exec(log)![1];
  // Signed in, so a registered address would get a code at once; this one gets nothing.
  for (const redirect of ['https://evil.example/callback', `${app}/callback/`, `${app}/callback?x=1`]) {
    const response = await page.goto(`/authorize?response_type=code&client_id=${clientId}`
      + `&redirect_uri=${encodeURIComponent(redirect)}&scope=openid&code_challenge=${'a'.repeat(43)}`
      + '&code_challenge_method=S256');
    expect(response?.status()).toBe(400);
    expect(new URL(page.url()).origin).not.toBe(new URL(redirect).origin === app ? 'x' : new URL(redirect).origin);
    await expect(page.getByRole('heading', { name: 'This sign-in request cannot be completed' })).toBeVisible();
    await expect(page.getByRole('alert')).toContainText('has not registered');
  }
  await expectAccessible(page);
});

/** Adds an authenticator app from the account page; returns its secret and the code used. */
async function addAuthenticator(page: Page): Promise<{ secret: string; used: string }> {
  await page.getByRole('link', { name: 'Security info' }).click();
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();
  const secret = (await page.locator('#totp-secret').innerText()).replace(/\s/g, '');
  const used = totp(secret);
  await page.getByLabel('Code from the app').fill(used);
  await page.getByRole('button', { name: 'Add authenticator app' }).click();
  await expect(page.getByRole('status')).toContainText('Authenticator app added');
  return { secret, used };
}

test('the mailbox alone never gets an application a sign-in to an account with an authenticator app', async ({ page }) => {
  const email = uniqueEmail('rp.mailbox');
  await signUp(page, 'Guarded Account', email);
  const { secret, used } = await addAuthenticator(page);
  await page.getByRole('link', { name: 'Back to your account' }).click();
  await new AccountPage(page).signOut();

  // Whoever controls the mailbox resets the password: it is not saved before the second factor.
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.getByLabel('Email').fill(email);
  const sent = codeCount(email);
  await page.getByRole('button', { name: 'Send code' }).click();
  await new CodePage(page).enter(await codeFor(email, sent + 1));
  await page.getByLabel('New password').fill(RESET_PASSWORD);
  await page.getByRole('button', { name: 'Save password' }).click();
  await expect(page.getByRole('heading', { name: 'Two-step verification' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Email me a code instead' })).toHaveCount(0);

  // At the application: the chosen password was never saved, the old one still needs the app.
  await page.goto(`${app}/login`);
  await new SignInPage(page).submit(email, RESET_PASSWORD);
  await new SignInPage(page).expectError('The email or password is incorrect.');
  await new SignInPage(page).submit(email, PASSWORD);
  await expect(page.getByRole('heading', { name: 'Two-step verification' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Email me a code instead' })).toHaveCount(0);
  await page.getByLabel('Authentication code').fill(await nextCode(secret, used, page));
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByTestId('amr')).toHaveText('pwd otp mfa');
});

test('an application asking for multifactor gets a second factor asked for, never a single-factor code', async ({ page }) => {
  const email = uniqueEmail('rp.acr');
  await signUp(page, 'Step Up', email);
  // Signed in with one factor: a silent request is answered interaction_required.
  await page.goto(`${app}/login?acr=urn:gatehouse:acr:mfa&prompt=none`);
  await expect(page.getByRole('alert')).toContainText('interaction_required');
  await page.goto('/account');
  await new AccountPage(page).signOut();

  await page.goto(`${app}/login?acr=urn:gatehouse:acr:mfa`);
  await new SignInPage(page).submit(email, PASSWORD);
  // The account has no other method: password plus the mailbox.
  await expect(page.getByRole('heading', { name: 'Two-step verification' })).toBeVisible();
  const sent = codeCount(email);
  await page.getByRole('button', { name: 'Email me a code instead' }).click();
  await page.getByLabel('Authentication code').fill(await codeFor(email, sent + 1));
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByText(`Signed in as ${email}`)).toBeVisible();
  await expect(page.getByTestId('amr')).toHaveText('pwd email mfa');
  await expect(page.getByTestId('acr')).toHaveText('urn:gatehouse:acr:mfa');
});
