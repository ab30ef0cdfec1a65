// Customers manage their account itself from the account page: change the email address (the new
// one proven by code, the old one able to undo it), download their data, delete the account.
import fs from 'node:fs';
import { test, expect, expectAccessible, signUp, uniqueEmail, codeFor, codeCount, allMails, AccountPage, SignInPage, PASSWORD, type Page } from './support';

test('a customer moves the account to a new address, and the old address can undo it', async ({ page, browser }) => {
  const email = uniqueEmail('move.old');
  const next = uniqueEmail('move.new');
  await signUp(page, 'Moving Person', email);
  await page.getByRole('link', { name: 'Change email address' }).click();
  await expect(page.getByRole('heading', { name: 'Change email address' })).toBeVisible();
  await expectAccessible(page);
  await page.getByLabel('New email address').fill(next);
  await page.getByRole('button', { name: 'Send a code' }).click();
  await expect(page.getByText(`We sent a code to ${next}`)).toBeVisible();
  await page.getByLabel('Code').fill(await codeFor(next));
  await page.getByRole('button', { name: 'Change email address' }).click();
  await expect(page.getByRole('status')).toContainText(`Your email address is now ${next}`);
  await new AccountPage(page).expectSignedInAs(next);

  // The old address got the undo link; opening it shows what it would do and changes nothing.
  await expect.poll(() => allMails().filter((m) => m.to.includes(email) && /was changed/.test(m.subject)).length).toBe(1);
  const notice = allMails().find((m) => m.to.includes(email) && /was changed/.test(m.subject))!;
  const link = /(http\S+\/account\/email\/undo\?token=\S+)/.exec(notice.body)![1];
  const other = await browser.newContext();
  const owner = await other.newPage();
  await owner.goto(link);
  await expect(owner.getByText(`changed from ${email} to ${next}`)).toBeVisible();
  await expectAccessible(owner);
  await owner.getByRole('button', { name: 'Put my address back and sign out everywhere' }).click();
  await expect(owner.getByRole('status')).toContainText('Your address is back');
  // Used once; every session ended.
  await owner.goto(link);
  await expect(owner.getByText('This link no longer works')).toBeVisible();
  await other.close();
  await page.goto('/account');
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  await new SignInPage(page).submit(email, PASSWORD);
  await new AccountPage(page).expectSignedInAs(email);
});

test('a customer downloads their data and then deletes the account', async ({ page }) => {
  const email = uniqueEmail('leaving');
  await signUp(page, 'Leaving Soon', email);
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download my data' }).click();
  const file = await (await download).path();
  const data = JSON.parse(fs.readFileSync(file, 'utf8'));
  expect(data.profile.email).toBe(email);
  expect(data.profile.name).toBe('Leaving Soon');
  expect(JSON.stringify(data)).not.toContain(PASSWORD);

  await page.getByRole('link', { name: 'Delete my account' }).click();
  await expect(page.getByRole('heading', { name: 'Delete your account' })).toBeVisible();
  await expectAccessible(page);
  await page.getByLabel(`Type your email address (${email}) to confirm`).fill('someone.else@example.com');
  await page.getByRole('button', { name: 'Delete my account' }).click();
  await expect(page.getByRole('alert')).toContainText('Type your email address exactly');
  await page.getByLabel(`Type your email address (${email}) to confirm`).fill(email);
  await page.getByRole('button', { name: 'Delete my account' }).click();
  await expect(page.getByRole('heading', { name: 'Your account was deleted' })).toBeVisible();
  await page.goto('/sign-in');
  const before = codeCount(email);
  await new SignInPage(page).submit(email, PASSWORD);
  await new SignInPage(page).expectError('The email or password is incorrect.');
  expect(codeCount(email)).toBe(before);
});
