import AxeBuilder from '@axe-core/playwright';
import { test, expect, signUp, uniqueEmail, uniquePhone } from './support';

// Every page passes axe's WCAG 2.1 A/AA rules (labels, roles, names, contrast, landmarks).
const pages = ['/sign-in', '/sign-in/code', '/sign-up', '/sign-up/code', '/reset', '/code', '/no-such-page'];

for (const path of pages) {
  test(`${path} has no accessibility violations`, async ({ page }) => {
    await page.goto(path);
    const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
    expect(results.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
  });
}

test('the account page and a form with errors have no accessibility violations', async ({ page }) => {
  await signUp(page, 'Axe Checker', uniqueEmail('axe'));
  let results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  expect(results.violations.map((v) => v.id)).toEqual([]);
  await page.getByLabel('Current password').fill('wrong-current-password');
  await page.getByLabel('New password').fill('x');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert')).toBeVisible();
  results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  expect(results.violations.map((v) => v.id)).toEqual([]);
});

test('the sign-in form can be completed with the keyboard alone', async ({ page }) => {
  await page.goto('/sign-in');
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Skip to content' })).toBeFocused();
  await page.getByLabel('Email').focus();
  await page.keyboard.type('keyboard@example.com');
  await page.keyboard.press('Tab');
  await expect(page.getByLabel('Password', { exact: true })).toBeFocused();
  await page.keyboard.type('some-password-typed');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('alert')).toHaveText('The email or password is incorrect.');
});

test('the security-info and authenticator pages have no accessibility violations', async ({ page }) => {
  await signUp(page, 'Axe Security', uniqueEmail('axe-security'));
  await page.goto('/account/security');
  let results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  expect(results.violations.map((v) => v.id)).toEqual([]);
  await page.getByRole('button', { name: 'Add an authenticator app' }).click();
  await expect(page.getByRole('heading', { name: 'Add an authenticator app' })).toBeVisible();
  results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  expect(results.violations.map((v) => v.id)).toEqual([]);
});

test('the phone-number pages have no accessibility violations', async ({ page }) => {
  await signUp(page, 'Axe Phone', uniqueEmail('axe-phone'));
  await page.goto('/account/security');
  await page.getByLabel('Mobile phone number').fill('12345');
  await page.getByRole('button', { name: 'Text me a code' }).click();
  await expect(page.getByRole('alert')).toBeVisible();
  await expect(page.getByLabel('Mobile phone number')).toHaveAttribute('aria-invalid', 'true');
  let results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  expect(results.violations.map((v) => v.id)).toEqual([]);
  await page.getByLabel('Mobile phone number').fill(uniquePhone());
  await page.getByRole('button', { name: 'Text me a code' }).click();
  await expect(page.getByRole('heading', { name: 'Check your phone' })).toBeVisible();
  results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  expect(results.violations.map((v) => v.id)).toEqual([]);
});
