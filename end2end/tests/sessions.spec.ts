import { test, expect, signUp, uniqueEmail, newContext, SignInPage, AccountPage, PASSWORD, CHANGED_PASSWORD } from './support';

test('the account page lists sessions and signs another device out', async ({ page, browser }) => {
  const email = uniqueEmail('sessions');
  await signUp(page, 'Two Devices', email);
  const other = await newContext(browser);
  const otherPage = await other.newPage();
  await new SignInPage(otherPage).open();
  await new SignInPage(otherPage).submit(email, PASSWORD);
  await new AccountPage(otherPage).expectSignedInAs(email);

  await page.reload();
  const account = new AccountPage(page);
  await expect(account.sessions()).toHaveCount(2);
  const otherRow = account.sessions().filter({ hasNot: page.getByText('This device') });
  await otherRow.getByRole('button', { name: /^Sign out/ }).click();
  await expect(page.getByRole('status')).toHaveText('The session was signed out.');
  await expect(account.sessions()).toHaveCount(1);

  await otherPage.reload();
  await expect(otherPage).toHaveURL(/\/sign-in$/);
  await other.close();
});

test('changing the password keeps this session and ends the others', async ({ page, browser }) => {
  const email = uniqueEmail('change');
  await signUp(page, 'Changer', email);
  const other = await newContext(browser);
  const otherPage = await other.newPage();
  await new SignInPage(otherPage).open();
  await new SignInPage(otherPage).submit(email, PASSWORD);

  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByLabel('New password').fill(CHANGED_PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('status')).toHaveText('Password changed. Your other sessions were signed out.');
  await otherPage.goto('/account');
  await expect(otherPage).toHaveURL(/\/sign-in$/);
  await other.close();
});
