import { test, expect, signUp, uniqueEmail, SignUpPage, PASSWORD } from './support';

test('a customer signs up with a password after proving the email', async ({ page }) => {
  const email = uniqueEmail('signup');
  await signUp(page, 'Ada Lovelace', email);
  await expect(page.getByLabel('Name')).toHaveValue('Ada Lovelace');
});

test('a common password is refused with a reason and nothing is lost', async ({ page }) => {
  const email = uniqueEmail('weak');
  const signUpPage = new SignUpPage(page);
  await signUpPage.open();
  await signUpPage.submit('Weak Password', email, 'password123');
  await expect(page.getByRole('alert')).toHaveText('This password is too common. Choose something harder to guess.');
  await expect(page.getByLabel('Email')).toHaveValue(email);
  await expect(page.getByLabel('Password', { exact: true })).toHaveAttribute('aria-invalid', 'true');
  await signUpPage.submit('Weak Password', email, PASSWORD);
  await expect(page.getByRole('heading', { name: 'Check your email' })).toBeVisible();
});
