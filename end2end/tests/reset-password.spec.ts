import { test, expect, signUp, uniqueEmail, codeFor, SignInPage, AccountPage, CodePage, RESET_PASSWORD } from './support';

test('a customer resets a forgotten password with an email code', async ({ page }) => {
  const email = uniqueEmail('reset');
  await signUp(page, 'Forgetful', email);
  await new AccountPage(page).signOut();
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await expect(page.getByRole('heading', { name: 'Reset your password' })).toBeVisible();
  await page.getByLabel('Email').fill(email);
  await page.getByRole('button', { name: 'Send code' }).click();
  await new CodePage(page).enter(await codeFor(email, 2));
  await expect(page.getByRole('heading', { name: 'Choose a new password' })).toBeVisible();
  await page.getByLabel('New password').fill(RESET_PASSWORD);
  await page.getByRole('button', { name: 'Save password' }).click();
  await new AccountPage(page).expectSignedInAs(email);
  await new AccountPage(page).signOut();
  const signIn = new SignInPage(page);
  await signIn.submit(email, RESET_PASSWORD);
  await new AccountPage(page).expectSignedInAs(email);
});
