// The admin console in Chromium: the first admin (created with `gatehouse create-admin` before
// the server starts) signs in with an email code, finds a customer, ends their sessions,
// registers an application (its secret shown once), and reads the sign-in and audit logs.
// Every console page passes the axe checks; a customer is refused. A Conditional Access policy
// written in the editor asks one customer to accept the terms of use at one application.
import fs from 'node:fs';
import path from 'node:path';
import {
  test, expect, expectAccessible, signInAsAdmin, signUp, uniqueEmail, codeFor, codeCount, newContext, AccountPage, SignInPage, PASSWORD, type Page,
} from './support';

// The customer's application (end2end/rp-app.mjs), registered as "Example Shop".
const app = `http://localhost:${Number(process.env.GATEHOUSE_E2E_RP_PORT || 2628)}`;

test.describe.configure({ mode: 'serial' });

test('an admin finds a customer, ends their sessions and reads the logs', async ({ page, browser }) => {
  const email = uniqueEmail('managed');
  await signUp(page, 'Managed Customer', email);
  const customer = page;

  const context = await newContext(browser);
  const admin = await context.newPage();
  await signInAsAdmin(admin);
  await admin.goto('/admin');
  await expect(admin.getByRole('heading', { name: 'Admin console' })).toBeVisible();
  await expectAccessible(admin);

  await admin.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Users' }).click();
  await admin.getByRole('search', { name: 'Search users' }).getByLabel('Email or name contains').fill(email);
  await admin.getByRole('button', { name: 'Search' }).click();
  await expectAccessible(admin);
  await admin.getByRole('table', { name: 'Users' }).getByRole('link', { name: email }).click();
  await expect(admin.getByRole('heading', { name: email })).toBeVisible();
  await expect(admin.getByRole('table', { name: 'Sessions' }).getByRole('row')).toHaveCount(2);
  await expectAccessible(admin);
  await admin.getByRole('button', { name: 'Sign out everywhere and revoke tokens' }).click();
  await expect(admin.getByRole('status')).toContainText('Every session of the account ended');

  // The customer is signed out at once.
  await customer.reload();
  await expect(customer.getByRole('heading', { name: 'Sign in' })).toBeVisible();

  await admin.getByRole('link', { name: 'Sign-in logs' }).click();
  await admin.getByLabel('User (email contains)').fill(email);
  await admin.getByRole('button', { name: 'Filter' }).click();
  await expect(admin.getByRole('table', { name: 'Sign-ins' }).getByRole('row')).toHaveCount(2);
  await expectAccessible(admin);
  // Enumerations are selects, applications appear by name, and the filters stay in the address.
  await admin.getByLabel('Result').selectOption('success');
  await admin.getByLabel('Application').selectOption({ label: 'Account portal' });
  await admin.getByRole('button', { name: 'Filter' }).click();
  await expect(admin).toHaveURL(/result=success/);
  await expect(admin).toHaveURL(/application=account/);
  await expect(admin.getByLabel('Result')).toHaveValue('success');
  const logged = admin.getByRole('table', { name: 'Sign-ins' });
  await expect(logged.getByRole('row')).toHaveCount(2);
  await expect(logged).toContainText('Account portal');
  // At 1,280 px no short word is broken inside across lines: cells wrap between words (or at a
  // hyphen), and the table scrolls.
  await admin.setViewportSize({ width: 1280, height: 900 });
  const broken = await logged.evaluate((table) => {
    const found: string[] = [];
    const walker = document.createTreeWalker(table, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent || '';
      for (const m of text.matchAll(/[A-Za-z0-9]{2,14}/g)) {
        const range = document.createRange();
        range.setStart(node, m.index!);
        range.setEnd(node, m.index! + m[0].length);
        const lines = new Set(Array.from(range.getClientRects()).map((r) => Math.round(r.top)));
        if (lines.size > 1) found.push(m[0]);
      }
    }
    return found;
  });
  expect(broken).toEqual([]);
  await admin.getByRole('link', { name: 'Audit log' }).click();
  await expect(admin.getByRole('table', { name: 'Audit log' })).toContainText('admin.user.sessions_revoked');
  await expectAccessible(admin);
  await context.close();
});

test('an admin registers an application and sees its secret once; customers are refused', async ({ page, browser }) => {
  const context = await newContext(browser);
  const admin = await context.newPage();
  await signInAsAdmin(admin);
  await admin.goto('/admin/apps');
  await expectAccessible(admin);
  await admin.getByLabel('Name', { exact: true }).fill('Console App');
  await admin.getByLabel('Redirect URIs', { exact: true }).fill('https://console-app.example.com/callback');
  await admin.getByRole('button', { name: 'Register application' }).click();
  await expect(admin.getByRole('heading', { name: 'Client secret' })).toBeVisible();
  await expect(admin.getByTestId('client-secret')).toHaveText(/^[A-Za-z0-9_-]{43}$/);
  await expectAccessible(admin);
  await admin.goto('/admin/apps');
  await admin.getByRole('table', { name: 'Applications' }).getByRole('link', { name: 'Console App' }).click();
  await expect(admin.getByRole('heading', { name: 'Console App' })).toBeVisible();
  await expect(admin.getByRole('heading', { name: 'Client secret' })).toHaveCount(0);
  await context.close();

  await signUp(page, 'Curious Customer', uniqueEmail('curious'));
  const response = await page.goto('/admin');
  expect(response?.status()).toBe(403);
  await expect(page.getByRole('heading', { name: 'Admins only' })).toBeVisible();
});

test('the Conditional Access page lists what is in force and answers What If', async ({ page, browser }) => {
  const email = uniqueEmail('what-if');
  await signUp(page, 'What If Customer', email);
  const context = await newContext(browser);
  const admin = await context.newPage();
  await signInAsAdmin(admin);
  await admin.goto('/admin');
  await admin.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Conditional Access' }).click();
  await expect(admin.getByRole('heading', { name: 'Conditional Access', level: 1 })).toBeVisible();
  await expect(admin.getByRole('table', { name: 'Policies' })).toBeVisible();
  await expect(admin.getByRole('table', { name: 'Named locations' })).toBeVisible();
  await expectAccessible(admin);
  const form = admin.getByRole('form', { name: 'What If' });
  await form.getByLabel('User (email)').fill(email);
  await form.getByLabel('IP address').fill('203.0.113.50');
  await form.getByLabel('Device platform').selectOption('windows');
  await form.getByRole('button', { name: 'Evaluate' }).click();
  await expect(admin.getByRole('status')).toContainText('Allowed: no enforced policy asks anything.');
  await expect(admin.getByLabel('Device platform')).toHaveValue('windows');
  await expectAccessible(admin);

  // Groups and named locations are managed on their own pages.
  await admin.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Groups' }).click();
  const newGroup = admin.getByRole('form', { name: 'New group' });
  await newGroup.getByLabel('Name').fill(`E2E ${email}`);
  await newGroup.getByRole('button', { name: 'Create group' }).click();
  await expect(admin.getByRole('status')).toContainText('The group was created.');
  const addMember = admin.getByRole('form', { name: 'Add a member' });
  await addMember.getByLabel('Email').fill(email);
  await addMember.getByRole('button', { name: 'Add member' }).click();
  await expect(admin.getByRole('table', { name: 'Members' })).toContainText(email);
  await expectAccessible(admin);
  await admin.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Named locations' }).click();
  const place = admin.getByRole('form', { name: 'Add or replace a location' });
  await place.getByLabel('Id').fill('e2e-office');
  await place.getByLabel('Name').fill('E2E office');
  await place.getByLabel('Address ranges').fill('203.0.113.0/24');
  await place.getByLabel('Trusted location').check();
  await place.getByRole('button', { name: 'Save location' }).click();
  await expect(admin.getByRole('table', { name: 'Named locations' })).toContainText('203.0.113.0/24');
  await expectAccessible(admin);
  await admin.getByRole('button', { name: 'Delete E2E office' }).click();
  await expect(admin.getByRole('status')).toContainText('The location was deleted.');
  await context.close();
});

test('a policy written in the editor asks one customer to accept the terms of use once, at one application', async ({ page, browser }) => {
  const suffix = `${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  const title = `Example Shop terms ${suffix}`;
  const policyName = `E2E terms ${suffix}`;
  const email = uniqueEmail('terms');
  // The customer exists before the policy names them; they then sign out.
  await signUp(page, 'Terms Reader', email);
  await new AccountPage(page).signOut();
  const log = fs.readFileSync(path.join(__dirname, '..', '.run', 'apps-shop.log'), 'utf8');
  const clientId = /client id: (\S+)/.exec(log)![1];

  const context = await newContext(browser);
  const admin = await context.newPage();
  await signInAsAdmin(admin);
  await admin.goto('/admin/access');
  await admin.getByRole('link', { name: 'Terms of use', exact: true }).click();
  await expect(admin.getByRole('heading', { name: 'Terms of use', level: 1 })).toBeVisible();
  const publish = admin.getByRole('form', { name: 'Publish terms of use' });
  await publish.getByLabel('Title').fill(title);
  await publish.getByLabel('Text').fill('Be kind to the other customers.\n\nReturns are accepted within 30 days.');
  await publish.getByRole('button', { name: 'Publish' }).click();
  await expect(admin.getByRole('status')).toContainText('The new version of the terms of use is published');
  await expect(admin.getByRole('table', { name: 'Published versions' })).toContainText(title);

  // Only this customer, only the Example Shop, only the terms (the new form asks MFA of everyone
  // at every application in report-only: each of those is changed).
  await admin.goto('/admin/access');
  await admin.getByRole('link', { name: 'New policy' }).click();
  await expect(admin.getByRole('heading', { name: 'New policy', level: 1 })).toBeVisible();
  const policy = admin.getByRole('form', { name: 'Policy' });
  await policy.getByLabel('Id', { exact: true }).fill(`e2e-terms-${suffix}`);
  await policy.getByLabel('Name', { exact: true }).fill(policyName);
  await policy.getByRole('group', { name: 'State', exact: true }).getByRole('radio', { name: 'On: enforced' }).check();
  await policy.getByRole('group', { name: 'Include', exact: true })
    .getByRole('radio', { name: 'Selected users and groups' }).check();
  await policy.getByLabel('Included users', { exact: true }).fill(email);
  await policy.getByRole('checkbox', { name: 'All applications', exact: true }).uncheck();
  await policy.getByRole('group', { name: 'Applications', exact: true })
    .getByRole('checkbox', { name: `Example Shop (${clientId})`, exact: true }).check();
  await expect(policy.getByRole('checkbox', { name: 'The account portal and the admin console' })).not.toBeChecked();
  await policy.getByRole('group', { name: 'Access', exact: true })
    .getByRole('radio', { name: 'Grant access, requiring the controls below' }).check();
  const controls = policy.getByRole('group', { name: 'Controls', exact: true });
  await controls.getByRole('checkbox', { name: 'Multifactor authentication', exact: true }).uncheck();
  await controls.getByRole('checkbox', { name: 'Accept the terms of use', exact: true }).check();
  await expectAccessible(admin);
  await policy.getByRole('button', { name: 'Save policy' }).click();
  await expect(admin.getByRole('status')).toContainText('The policy was saved');
  await expect(admin.getByRole('heading', { name: `Policy: ${policyName}`, level: 1 })).toBeVisible();
  await context.close();

  // At the application: the password, then the terms, then back in the application.
  await page.goto(`${app}/login`);
  await new SignInPage(page).submit(email, PASSWORD);
  await expect(page.getByRole('heading', { name: 'Terms of use', level: 1 })).toBeVisible();
  const terms = page.getByRole('region', { name: title });
  await expect(terms.getByRole('heading', { name: title, level: 2 })).toBeVisible();
  await expect(terms).toContainText('Returns are accepted within 30 days.');
  await expectAccessible(page);
  await page.getByRole('button', { name: 'Accept and continue' }).click();
  await expect(page.getByRole('heading', { name: 'Example Shop' })).toBeVisible();
  await expect(page.getByText(`Signed in as ${email} (Terms Reader)`)).toBeVisible();

  // Accepted once: signed out and in again, the application is reached without the terms.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Signed out of Example Shop' })).toBeVisible();
  const termsVisits: string[] = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/terms') termsVisits.push(r.url()); });
  await page.goto(`${app}/login`);
  await new SignInPage(page).submit(email, PASSWORD);
  await expect(page.getByText(`Signed in as ${email} (Terms Reader)`)).toBeVisible();
  expect(termsVisits).toEqual([]);
});
