// Identity Protection in Chromium: a customer reports a sign-in from another browser with the
// "this wasn't me" link of the new-browser email; the other browser is signed out, and the
// administrator finds the account among the risky users and the report's evidence on its
// detection page. An administrator confirming another account compromised signs its browser
// out at once. An admin adds a webhook endpoint and a receiver verifies the signed test event;
// a report's download shows its progress. Every page passes the axe checks.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  test, expect, expectAccessible, signInAsAdmin, SECURITY_ADMIN, signUp, uniqueEmail, allMails, newContext, SignInPage, PASSWORD,
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

test('an admin adds a webhook endpoint, sends a test event and the receiver verifies its signature', async ({ page }) => {
  // A receiver on the loopback, as a SIEM's collector would be.
  const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const { port } = receiver.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}/hook`;
  try {
    await signInAsAdmin(page, SECURITY_ADMIN);
    await page.goto('/admin/risk/users');
    await page.getByRole('navigation', { name: 'Identity Protection reports' }).getByRole('link', { name: 'Webhooks' }).click();
    await expect(page.getByRole('heading', { name: 'Webhooks', exact: true })).toBeVisible();
    await expectAccessible(page);
    const form = page.getByRole('form', { name: 'Add a webhook endpoint' });
    await form.getByLabel('Endpoint URL').fill(url);
    await form.getByLabel('Description').fill('E2E collector');
    await expect(form.getByRole('checkbox', { name: /risky_sign_in\.created/ })).toBeChecked();
    await form.getByRole('button', { name: 'Add endpoint' }).click();
    await expect(page.getByRole('heading', { name: 'Signing secret' })).toBeVisible();
    const secret = (await page.getByTestId('webhook-secret').textContent()) || '';
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    await expectAccessible(page);

    await page.getByRole('button', { name: 'Send test event' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'A test event is queued' })).toBeVisible();
    await expect(page.getByTestId('webhook-secret')).toHaveCount(0);
    await expect.poll(() => received.filter((r) => r.body.includes('"webhook.test"')).length, { timeout: 20_000 }).toBe(1);
    const test = received.find((r) => r.body.includes('"webhook.test"'))!;
    const id = String(test.headers['webhook-id']);
    const timestamp = String(test.headers['webhook-timestamp']);
    const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
    const expected = 'v1,' + crypto.createHmac('sha256', key).update(`${id}.${timestamp}.${test.body}`).digest('base64');
    expect(String(test.headers['webhook-signature']).split(' ')).toContain(expected);
    expect(JSON.parse(test.body).type).toBe('webhook.test');

    await expect(async () => {
      await page.reload();
      await expect(page.getByRole('table', { name: 'Recent deliveries' }).getByRole('row', { name: /webhook\.test/ }))
        .toContainText('Delivered');
    }).toPass({ timeout: 20_000 });
    await expect(page.getByRole('table', { name: 'Recent deliveries' })).toContainText('HTTP 204');
    await expectAccessible(page);

    await page.getByLabel('I understand its pending deliveries are dropped').check();
    await page.getByRole('button', { name: 'Delete endpoint' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'The endpoint was deleted' })).toBeVisible();
    await expect(page.getByRole('table', { name: 'Webhook endpoints' })).not.toContainText(url);
  } finally {
    receiver.close();
  }
});

test('a report download shows its progress and saves every row', async ({ page }) => {
  await signInAsAdmin(page, SECURITY_ADMIN);
  await page.goto('/admin/risk/detections');
  // Once the wasm has loaded, the link fetches the download itself and counts its rows.
  await expect(page.locator('.gh-export[data-enhanced="true"]').first()).toBeAttached();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download CSV' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('risk-detections.csv');
  const file = await download.path();
  const lines = fs.readFileSync(file!, 'utf8').trim().split('\n');
  expect(lines[0]).toMatch(/^id,detected_at,user_id,email,kind/);
  expect(lines.length).toBeGreaterThan(1);
  await expect(page.getByRole('status').filter({ hasText: 'Downloaded' })).toHaveText(`Downloaded ${(lines.length - 1).toLocaleString('en-US')} rows`);
  await expectAccessible(page);
});
