import { test, expect, signUp, uniqueEmail, uniquePhone, smsCodeFor, SignInPage, AccountPage, PASSWORD } from './support';

test('a customer adds a phone number and signs in with a texted code', async ({ page }) => {
  const email = uniqueEmail('sms');
  const phone = uniquePhone();
  await signUp(page, 'Text Me', email);
  await page.getByRole('link', { name: 'Security info' }).click();
  await expect(page.getByText('Text messages are the least secure way to prove it is you')).toBeVisible();
  // Typed the way people write numbers; stored in E.164.
  await page.getByLabel('Mobile phone number').fill(`${phone.slice(0, 2)} (${phone.slice(2, 5)}) ${phone.slice(5, 8)}-${phone.slice(8)}`);
  await page.getByRole('button', { name: 'Text me a code' }).click();
  await expect(page.getByRole('heading', { name: 'Check your phone' })).toBeVisible();
  await page.getByLabel('Code').fill(await smsCodeFor(phone, 1));
  await page.getByRole('button', { name: 'Add phone number' }).click();
  await expect(page.getByRole('status')).toHaveText('Phone number added. You can get sign-in codes by text message.');
  await expect(page.getByRole('list', { name: 'Sign-in methods' }).getByRole('listitem')).toContainText(`Text messages to ${phone}`);

  await page.goto('/account');
  await new AccountPage(page).signOut();
  await new SignInPage(page).submit(email, PASSWORD);
  await expect(page.getByRole('heading', { name: 'Two-step verification' })).toBeVisible();
  await page.getByRole('button', { name: /^Text a code to \+•+\d\d$/ }).click();
  await expect(page.getByRole('status')).toHaveText('We texted you a code. Enter it above.');
  await page.getByLabel('Authentication code').fill(await smsCodeFor(phone, 2));
  await page.getByRole('button', { name: 'Verify' }).click();
  await new AccountPage(page).expectSignedInAs(email);
});

test('a number that is not a mobile number in international format is refused with the reason', async ({ page }) => {
  await signUp(page, 'Bad Number', uniqueEmail('sms-bad'));
  await page.goto('/account/security');
  await page.getByLabel('Mobile phone number').fill('555 0100');
  await page.getByRole('button', { name: 'Text me a code' }).click();
  await expect(page.getByRole('alert')).toHaveText('Enter a mobile number in international format, starting with + and the country code.');
  await expect(page.getByLabel('Mobile phone number')).toHaveValue('555 0100');
});
