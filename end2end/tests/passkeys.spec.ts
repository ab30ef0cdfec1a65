import type { CDPSession, Page } from '@playwright/test';
import { test, expect, signUp, uniqueEmail, AccountPage } from './support';

/** A platform authenticator in this page's browser, through the DevTools protocol. */
async function virtualAuthenticator(page: Page): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

/** Signs up and adds a passkey named `name` from the security-info page. */
async function signUpWithPasskey(page: Page, email: string, name: string) {
  const authenticator = await virtualAuthenticator(page);
  await signUp(page, 'Pass Key', email);
  await page.getByRole('link', { name: 'Security info' }).click();
  await page.getByLabel('Passkey name').fill(name);
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  await expect(page.getByRole('status')).toHaveText('Passkey added. You can now sign in with it, without a password.');
  const methods = page.getByRole('list', { name: 'Sign-in methods' }).getByRole('listitem');
  await expect(methods).toHaveCount(1);
  await expect(methods.first()).toContainText(name);
  const { credentials } = await authenticator.cdp.send('WebAuthn.getCredentials', { authenticatorId: authenticator.authenticatorId });
  expect(credentials).toHaveLength(1);
  expect(credentials[0].isResidentCredential).toBe(true);
  expect(credentials[0].rpId).toBe('localhost');
  return authenticator;
}

const OPTIONS = '**/sign-in/passkey/options';

/**
 * Opens the sign-in page with its autofill request refused, so the virtual authenticator (which
 * answers an autofill request at once) does not sign in before the test acts.
 */
async function signInPageWithoutAutofill(page: Page, open: () => Promise<unknown>) {
  await page.route(OPTIONS, (route) => route.abort(), { times: 1 });
  const refused = page.waitForEvent('requestfailed', (r) => r.url().endsWith('/sign-in/passkey/options'));
  await open();
  await refused;
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
}

async function signOut(page: Page) {
  await page.goto('/account');
  await signInPageWithoutAutofill(page, () => new AccountPage(page).signOut());
}

test('a customer adds a passkey and signs in with the passkey button, no password', async ({ page }) => {
  const email = uniqueEmail('passkey-button');
  const { cdp, authenticatorId } = await signUpWithPasskey(page, email, 'This laptop');
  await signOut(page);
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await new AccountPage(page).expectSignedInAs(email);
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  expect(credentials[0].signCount).toBeGreaterThan(0);
  await page.goto('/account/security');
  await expect(page.getByRole('list', { name: 'Sign-in methods' }).getByRole('listitem').first())
    .not.toContainText('Never');
});

test('a customer signs in by picking the passkey from the email field autofill', async ({ page }) => {
  const email = uniqueEmail('passkey-autofill');
  await signUpWithPasskey(page, email, 'Phone');
  await signOut(page);
  await expect(page.getByLabel('Email')).toHaveAttribute('autocomplete', 'username webauthn');
  // The page asks for a passkey through autofill as soon as it is interactive; the virtual
  // authenticator answers the way a person picking the passkey in the email field would.
  await page.reload();
  await new AccountPage(page).expectSignedInAs(email);
});

test('a passkey is renamed and removed from security info', async ({ page }) => {
  const email = uniqueEmail('passkey-manage');
  await signUpWithPasskey(page, email, 'Old name');
  await page.getByLabel('New name for Old name').fill('Desk key');
  await page.getByRole('button', { name: 'Rename Old name' }).click();
  await expect(page.getByRole('status')).toHaveText('Passkey renamed.');
  await page.getByRole('button', { name: 'Remove Desk key' }).click();
  await expect(page.getByRole('status')).toHaveText('Passkey removed.');
  await expect(page.getByRole('list', { name: 'Sign-in methods' }).getByRole('listitem')).toHaveCount(0);
});

test('cancelling the passkey prompt says so and leaves the other ways in', async ({ page }) => {
  const { cdp, authenticatorId } = await virtualAuthenticator(page);
  // A person who does not complete the check (no PIN or fingerprint).
  await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false });
  await signInPageWithoutAutofill(page, () => page.goto('/sign-in'));
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await expect(page.getByRole('alert')).toHaveText('The passkey request was cancelled or timed out. Try again, or use another way.');
  await expect(page.getByRole('button', { name: 'Sign in', exact: true })).toBeEnabled();
});

test('a bad signature, or an answer without user verification or presence, signs nobody in', async ({ page }) => {
  const email = uniqueEmail('passkey-bogus');
  const { cdp, authenticatorId } = await signUpWithPasskey(page, email, 'Tampered');
  await signOut(page);
  for (const bit of ['isBogusSignature', 'isBadUV', 'isBadUP'] as const) {
    await cdp.send('WebAuthn.setResponseOverrideBits', { authenticatorId, [bit]: true });
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await expect(page.getByRole('alert'), bit).toContainText(/not accepted|cancelled or timed out/);
    await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
    await cdp.send('WebAuthn.setResponseOverrideBits', { authenticatorId, [bit]: false });
  }
  // The next normal attempt succeeds.
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await new AccountPage(page).expectSignedInAs(email);
});

test('passkeys work in a browser without the WebAuthn JSON helpers', async ({ page }) => {
  // As in browsers from before PublicKeyCredential.parse*FromJSON and toJSON.
  await page.addInitScript(() => {
    const pkc = window.PublicKeyCredential as unknown as Record<string, unknown>;
    delete pkc.parseCreationOptionsFromJSON;
    delete pkc.parseRequestOptionsFromJSON;
    delete (window.PublicKeyCredential.prototype as unknown as Record<string, unknown>).toJSON;
  });
  const email = uniqueEmail('passkey-legacy');
  await signUpWithPasskey(page, email, 'Older browser');
  expect(await page.evaluate(() => 'toJSON' in window.PublicKeyCredential.prototype)).toBe(false);
  expect(await page.evaluate(() => 'parseRequestOptionsFromJSON' in window.PublicKeyCredential)).toBe(false);
  await signOut(page);
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await new AccountPage(page).expectSignedInAs(email);
});
