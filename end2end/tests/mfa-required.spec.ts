// A tenant that requires MFA for everyone (its own server, started with `gatehouse mfa require`):
// no application gets a code, and no page but security info opens, before the account has a
// second factor. The application is the same `openid-client` web app as in oidc-client.spec.ts.
import { test, expect, uniqueEmail, codeFor, CodePage, SignUpPage, PASSWORD } from './support';
import { totp } from './totp';

const strict = `http://localhost:${Number(process.env.GATEHOUSE_E2E_STRICT_PORT || 3101)}`;
const app = `http://localhost:${Number(process.env.GATEHOUSE_E2E_STRICT_RP_PORT || 2629)}`;

test.use({ baseURL: strict });

test('with MFA for everyone, an application gets a code only after the account adds a second factor', async ({ page }) => {
  const email = uniqueEmail('strict');
  const signUp = new SignUpPage(page);
  await signUp.open();
  await signUp.submit('Strict Tenant', email, PASSWORD);
  await new CodePage(page).enter(await codeFor(email));
  // Straight to security info, before any other page.
  await expect(page.getByRole('heading', { name: 'Security info' })).toBeVisible();
  await expect(page.getByRole('status')).toContainText('requires two-step verification');

  // Signed in, but without a second factor: a silent request is refused...
  await page.goto(`${app}/login?prompt=none`);
  await expect(page.getByRole('alert')).toContainText('interaction_required');
  // ...and an interactive one is sent to add a method first.
  await page.goto(`${app}/login`);
  await expect(page.getByRole('heading', { name: 'Security info' })).toBeVisible();
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();
  const secret = (await page.locator('#totp-secret').innerText()).replace(/\s/g, '');
  await page.getByLabel('Code from the app').fill(totp(secret));
  await page.getByRole('button', { name: 'Add authenticator app' }).click();
  // The request goes on to the application.
  await expect(page.getByRole('heading', { name: 'Example Shop' })).toBeVisible();
  await expect(page.getByText(`Signed in as ${email}`)).toBeVisible();
});
