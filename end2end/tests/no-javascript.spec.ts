import { test as base, expect } from '@playwright/test';
import { newContext, uniqueEmail, codeFor, SignUpPage, CodePage, AccountPage, SignInPage, PASSWORD } from './support';

// The forms are plain HTML: they work before the wasm loads, and with no script at all.
base('sign-up, sign-out and sign-in work with JavaScript disabled', async ({ browser }) => {
  const context = await newContext(browser, false);
  const page = await context.newPage();
  const email = uniqueEmail('nojs');
  const signUp = new SignUpPage(page);
  await signUp.open();
  await expect(page.getByRole('button', { name: 'Show password' })).toBeHidden();
  await signUp.submit('No Script', email, PASSWORD);
  await new CodePage(page).enter(await codeFor(email));
  const account = new AccountPage(page);
  await account.expectSignedInAs(email);
  await account.signOut();
  await new SignInPage(page).submit(email, PASSWORD);
  await account.expectSignedInAs(email);
  await context.close();
});
