import { test, expect, uniqueEmail, codeFor, CodePage, AccountPage } from './support';

test('a customer signs up and signs in with email codes only', async ({ page }) => {
  const email = uniqueEmail('otp');
  await page.goto('/sign-up');
  await page.getByRole('link', { name: 'Sign up with an email code instead' }).click();
  await page.getByLabel('Name').fill('Grace Hopper');
  await page.getByLabel('Email').fill(email);
  await page.getByRole('button', { name: 'Send code' }).click();
  const codePage = new CodePage(page);
  await codePage.expectShown();
  await codePage.enter('000000' === (await codeFor(email)) ? '111111' : '000000');
  await expect(page.getByRole('alert')).toContainText('That code is not right. Attempts left: 4.');
  await codePage.enter(await codeFor(email));
  const account = new AccountPage(page);
  await account.expectSignedInAs(email);
  await account.signOut();

  await page.getByRole('link', { name: 'Email me a sign-in code' }).click();
  await page.getByLabel('Email').fill(email);
  await page.getByRole('button', { name: 'Send code' }).click();
  await codePage.enter(await codeFor(email, 2));
  await account.expectSignedInAs(email);
});
