import { test, expect, signUp, uniqueEmail, codeFor, SignInPage, AccountPage, PASSWORD } from './support';
import { totp, nextCode } from './totp';

test('a customer adds an authenticator app and signs in with it; a used code is refused', async ({ page }) => {
  const email = uniqueEmail('totp');
  await signUp(page, 'Two Step', email);
  await page.getByRole('link', { name: 'Security info' }).click();
  await expect(page.getByRole('heading', { name: 'Security info' })).toBeVisible();
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();
  await expect(page.getByRole('img', { name: 'QR code for your authenticator app' })).toBeVisible();
  const secret = (await page.locator('#totp-secret').innerText()).replace(/\s/g, '');
  await expect(page.locator('#totp-uri')).toContainText(`otpauth://totp/Gatehouse:`);
  const enrollCode = totp(secret);
  await page.getByLabel('Code from the app').fill(enrollCode);
  await page.getByRole('button', { name: 'Add authenticator app' }).click();
  await expect(page.getByRole('status')).toHaveText('Authenticator app added. You will be asked for a code when you sign in.');
  await expect(page.getByRole('list', { name: 'Sign-in methods' }).getByRole('listitem')).toHaveCount(1);

  await page.getByRole('link', { name: 'Back to your account' }).click();
  await new AccountPage(page).signOut();
  await new SignInPage(page).submit(email, PASSWORD);
  await expect(page.getByRole('heading', { name: 'Two-step verification' })).toBeVisible();
  // The enrollment code's step is spent; the next one signs in.
  await page.getByLabel('Authentication code').fill(enrollCode);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByRole('alert')).toHaveText('That code is not right. Enter the newest code from your app.');
  const signInCode = await nextCode(secret, enrollCode, page);
  await page.getByLabel('Authentication code').fill(signInCode);
  await page.getByRole('button', { name: 'Verify' }).click();
  await new AccountPage(page).expectSignedInAs(email);

  // The same code in a second sign-in is refused.
  await new AccountPage(page).signOut();
  await new SignInPage(page).submit(email, PASSWORD);
  await page.getByLabel('Authentication code').fill(signInCode);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByRole('alert')).toHaveText('That code is not right. Enter the newest code from your app.');
});

test('removing the authenticator app ends the need for a code', async ({ page }) => {
  const email = uniqueEmail('totp-remove');
  await signUp(page, 'Remover', email);
  await page.goto('/account/security');
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();
  const secret = (await page.locator('#totp-secret').innerText()).replace(/\s/g, '');
  await page.getByLabel('Code from the app').fill(totp(secret));
  await page.getByRole('button', { name: 'Add authenticator app' }).click();
  await page.getByRole('button', { name: 'Remove Authenticator app' }).click();
  await expect(page.getByRole('status')).toHaveText('Authenticator app removed.');
  await expect(page.getByRole('list', { name: 'Sign-in methods' }).getByRole('listitem')).toHaveCount(0);
  await page.goto('/account');
  await new AccountPage(page).signOut();
  await new SignInPage(page).submit(email, PASSWORD);
  await new AccountPage(page).expectSignedInAs(email);
});

test('a customer who lost the device signs in with a recovery code, once', async ({ page }) => {
  const email = uniqueEmail('recovery');
  await signUp(page, 'Recoverer', email);
  await page.goto('/account/security');
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();
  const secret = (await page.locator('#totp-secret').innerText()).replace(/\s/g, '');
  await page.getByLabel('Code from the app').fill(totp(secret));
  await page.getByRole('button', { name: 'Add authenticator app' }).click();
  await page.getByRole('button', { name: 'Create new recovery codes' }).click();
  const codes = await page.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem').allInnerTexts();
  expect(codes).toHaveLength(10);

  await page.goto('/account');
  await new AccountPage(page).signOut();
  await new SignInPage(page).submit(email, PASSWORD);
  await page.getByLabel('Authentication code').fill(codes[0]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await new AccountPage(page).expectSignedInAs(email);
  await new AccountPage(page).signOut();
  await new SignInPage(page).submit(email, PASSWORD);
  await page.getByLabel('Authentication code').fill(codes[0]);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByRole('alert')).toHaveText('That code is not right. Enter the newest code from your app.');
});

test('with an authenticator app, the mailbox is never offered as the second factor', async ({ page }) => {
  const email = uniqueEmail('email-2fa');
  await signUp(page, 'Emailer', email);
  await page.goto('/account/security');
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();
  const secret = (await page.locator('#totp-secret').innerText()).replace(/\s/g, '');
  await page.getByLabel('Code from the app').fill(totp(secret));
  await page.getByRole('button', { name: 'Add authenticator app' }).click();
  await page.goto('/account');
  await new AccountPage(page).signOut();
  await new SignInPage(page).submit(email, PASSWORD);
  await expect(page.getByRole('heading', { name: 'Two-step verification' })).toBeVisible();
  // Whoever knows the password and reads the mailbox still needs the app (or a recovery code).
  await expect(page.getByRole('button', { name: 'Email me a code instead' })).toHaveCount(0);
  await expect(page.getByLabel('Authentication code')).toBeVisible();
});
