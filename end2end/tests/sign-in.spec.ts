import { test, expect, signUp, uniqueEmail, SignInPage, AccountPage, PASSWORD, WRONG_PASSWORD } from './support';

test('a customer signs in, and signs out with a POST that ends the session', async ({ page }) => {
  const email = uniqueEmail('signin');
  await signUp(page, 'Sign In', email);
  await new AccountPage(page).signOut();
  await expect(page).toHaveURL(/\/sign-in$/);
  await page.goto('/account');
  await expect(page).toHaveURL(/\/sign-in$/);

  const signIn = new SignInPage(page);
  await signIn.submit(email, PASSWORD);
  await new AccountPage(page).expectSignedInAs(email);
});

test('a wrong password and an unknown email get the same message', async ({ page }) => {
  const email = uniqueEmail('wrongpw');
  await signUp(page, 'Wrong Password', email);
  await new AccountPage(page).signOut();
  const signIn = new SignInPage(page);
  await signIn.submit(email, WRONG_PASSWORD);
  await signIn.expectError('The email or password is incorrect.');
  await expect(page.getByLabel('Email')).toHaveValue(email);
  await signIn.submit(uniqueEmail('nobody'), WRONG_PASSWORD);
  await signIn.expectError('The email or password is incorrect.');
});

test('the password field can be revealed once the page is interactive', async ({ page }) => {
  await page.goto('/sign-in');
  const password = page.getByLabel('Password', { exact: true });
  await password.fill('visible-secret');
  await expect(password).toHaveAttribute('type', 'password');
  const reveal = page.getByRole('button', { name: 'Show password' });
  await reveal.click();
  await expect(password).toHaveAttribute('type', 'text');
  await expect(reveal).toHaveAttribute('aria-pressed', 'true');
  await reveal.click();
  await expect(password).toHaveAttribute('type', 'password');
});

test('the page is styled and branded at first paint', async ({ page }) => {
  await page.goto('/sign-in');
  const button = page.getByRole('button', { name: 'Sign in', exact: true });
  // The default primary colour (#3147d6) from the branding variables, white text on it.
  await expect(button).toHaveCSS('background-color', 'rgb(49, 71, 214)');
  await expect(button).toHaveCSS('color', 'rgb(255, 255, 255)');
  await expect(page.getByLabel('Email')).toHaveCSS('min-height', '44px');
});
