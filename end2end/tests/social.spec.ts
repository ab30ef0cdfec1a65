// Sign-in through a real OpenID Connect provider (oidc-provider on loopback, configured as
// "Example ID" through the command line): sign-up, sign-in again, linking to an existing
// account once it is proven, unlinking, and cancelling at the provider.
import AxeBuilder from '@axe-core/playwright';
import { test, expect, signUp, uniqueEmail, AccountPage, SignInPage, PASSWORD, type Page } from './support';

async function expectAccessible(page: Page) {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  expect(results.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

/** Clicks "Continue with Example ID" and, at the provider, signs in as `login` and consents
 * when the provider asks (it does not once it remembers the browser). */
async function continueWithProvider(page: Page, login: string) {
  await page.getByRole('button', { name: 'Continue with Example ID' }).click();
  const providerForm = page.getByPlaceholder('Enter any login');
  const back = page.getByRole('heading', { name: /Your account|Link Example ID|Finish creating/ });
  await expect(providerForm.or(back)).toBeVisible();
  if (await providerForm.isVisible()) {
    await providerForm.fill(login);
    await page.getByPlaceholder('and password').fill('anything at the provider');
    await page.getByRole('button', { name: 'Sign-in' }).click();
    const consent = page.getByRole('button', { name: 'Continue' });
    await expect(consent.or(back)).toBeVisible();
    if (await consent.isVisible()) await consent.click();
  }
}

test('a customer signs up with a provider and signs in with it again', async ({ page }) => {
  const email = uniqueEmail('ada.social');
  await page.goto('/sign-up');
  await continueWithProvider(page, email);
  const account = new AccountPage(page);
  await account.expectSignedInAs(email);
  // The provider gave the name; nothing else was asked.
  await expect(page.getByLabel('Name')).toHaveValue(/^Ada Social/);
  await account.signOut();

  await page.goto('/sign-in');
  await continueWithProvider(page, email);
  await account.expectSignedInAs(email);
  await page.goto('/account/security');
  const linked = page.getByRole('list', { name: 'Linked accounts' });
  await expect(linked.getByRole('listitem')).toHaveCount(1);
  await expect(linked).toContainText(`Example ID (${email})`);
});

test('an existing account is linked only after it is proven, and can be unlinked', async ({ page }) => {
  const email = uniqueEmail('linker');
  await signUp(page, 'Link Tester', email);
  await new AccountPage(page).signOut();

  await page.goto('/sign-in');
  await continueWithProvider(page, email);
  await expect(page.getByRole('heading', { name: 'Link Example ID to your account' })).toBeVisible();
  await expect(page.getByText(`An account with ${email} already exists`)).toBeVisible();
  await expectAccessible(page);
  await page.getByRole('link', { name: 'Sign in to link' }).click();
  await new SignInPage(page).submit(email, PASSWORD);
  await expectAccessible(page);
  await page.getByRole('button', { name: 'Link Example ID' }).click();
  await expect(page.getByRole('status')).toHaveText('The account is linked. You can sign in with it from now on.');
  const linked = page.getByRole('list', { name: 'Linked accounts' });
  await expect(linked).toContainText(`Example ID (${email})`);

  await page.getByRole('button', { name: `Unlink Example ID (${email})` }).click();
  await expect(page.getByRole('status')).toHaveText('The account was unlinked.');
  await expect(page.getByText('No accounts from other providers are linked.')).toBeVisible();
  await expectAccessible(page);
  // Linking again starts from the same page, through the provider.
  await expect(page.getByRole('button', { name: 'Link Example ID' })).toBeVisible();
});

test('cancelling at the provider says so and signs nobody in', async ({ page }) => {
  await page.goto('/sign-in');
  await page.getByRole('button', { name: 'Continue with Example ID' }).click();
  await expect(page.getByPlaceholder('Enter any login')).toBeVisible();
  await page.getByRole('link', { name: '[ Cancel ]' }).click();
  await expect(page.getByRole('heading', { name: 'Sign-in did not complete' })).toBeVisible();
  await expect(page.getByRole('alert')).toHaveText(
    'You cancelled signing in with Example ID. Choose another way to sign in, or try again.');
  await expectAccessible(page);
  await page.goto('/account');
  await expect(page).toHaveURL(/\/sign-in$/);
});
