// Identity Protection in Chromium: a customer reports a sign-in from another browser with the
// "this wasn't me" link of the new-browser email; the other browser is signed out, and the
// administrator finds the account among the risky users and the report's evidence on its
// detection page. An administrator confirming another account compromised signs its browser
// out at once. Every page passes the axe checks.
import {
  test, expect, expectAccessible, signInAsAdmin, signUp, uniqueEmail, allMails, newContext, SignInPage, PASSWORD,
} from './support';

test.describe.configure({ mode: 'serial' });

test('a customer reports a sign-in that was not them, and the admin reads it among the risky users', async ({ page, browser }) => {
  const email = uniqueEmail('reported');
  await signUp(page, 'Reporting Customer', email);

  // Someone else signs in from another browser: the owner is emailed a "this wasn't me" link.
  const elsewhere = await newContext(browser);
  const intruder = await elsewhere.newPage();
  const signIn = new SignInPage(intruder);
  await signIn.open();
  await signIn.submit(email, PASSWORD);
  await expect(intruder.getByRole('heading', { name: 'Your account' })).toBeVisible();
  let link = '';
  await expect.poll(() => {
    const mail = allMails().find((m) => m.to.includes(email) && m.body.includes('/account/not-me?token='));
    link = mail ? mail.body.split(/\s+/).find((w) => w.includes('/account/not-me?token=')) || '' : '';
    return link;
  }).not.toEqual('');

  await page.goto(link.slice(link.indexOf('/account/not-me')));
  await expect(page.getByRole('heading', { name: 'Report a sign-in that was not you' })).toBeVisible();
  await expectAccessible(page);
  await page.getByRole('button', { name: "This wasn't me: sign it out and secure my account" }).click();
  await expect(page.getByRole('status')).toContainText('your password no longer works');
  await intruder.reload();
  await expect(intruder.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  await elsewhere.close();

  const context = await newContext(browser);
  const admin = await context.newPage();
  await signInAsAdmin(admin);
  await admin.goto('/admin');
  await admin.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Identity Protection' }).click();
  await admin.getByLabel('User (email contains)').fill(email);
  await admin.getByRole('button', { name: 'Filter' }).click();
  const risky = admin.getByRole('table', { name: 'Risky users' });
  await expect(risky.getByRole('row', { name: new RegExp(email) })).toContainText('High');
  await expectAccessible(admin);
  await risky.getByRole('link', { name: '1', exact: true }).click();
  const detections = admin.getByRole('table', { name: 'Risk detections' });
  await expect(detections).toContainText('User reported suspicious activity');
  await expectAccessible(admin);
  await detections.getByRole('row', { name: /User reported suspicious activity/ }).getByRole('link').first().click();
  await expect(admin.getByRole('heading', { name: 'User reported suspicious activity' })).toBeVisible();
  await expect(admin.getByText('The owner reported the sign-in from')).toBeVisible();
  await expect(admin.getByRole('table', { name: 'State history' })).toContainText('At risk');
  await expectAccessible(admin);
  await context.close();
});

test('confirming an account compromised signs its browser out at once', async ({ page, browser }) => {
  const email = uniqueEmail('compromised');
  await signUp(page, 'Compromised Customer', email);

  const context = await newContext(browser);
  const admin = await context.newPage();
  await signInAsAdmin(admin);
  await admin.goto('/admin/users');
  await admin.getByRole('search', { name: 'Search users' }).getByLabel('Email or name contains').fill(email);
  await admin.getByRole('button', { name: 'Search' }).click();
  await admin.getByRole('table', { name: 'Users' }).getByRole('link', { name: email }).click();
  await admin.getByRole('button', { name: 'Confirm compromised' }).click();
  await expect(admin.getByRole('table', { name: 'Risk detections' })).toContainText('Admin confirmed user compromised');
  await expectAccessible(admin);

  await page.reload();
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();

  await admin.goto('/admin/risk/users?state=confirmed-compromised');
  await expect(admin.getByRole('table', { name: 'Risky users' }).getByRole('row', { name: new RegExp(email) }))
    .toContainText('Confirmed compromised');
  await context.close();
});
