// Page objects and helpers for the Gatehouse specs. Everything is found by role and accessible
// name, the way a person using a screen reader would find it.
import { test as base, expect, type Page, type BrowserContext } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import fs from 'node:fs';
import path from 'node:path';

export const mailDir = process.env.GATEHOUSE_E2E_MAIL_DIR || path.join(__dirname, '..', '.mail');
export const smsDir = process.env.GATEHOUSE_E2E_SMS_DIR || path.join(__dirname, '..', '.sms');

export const PASSWORD = 'quiet-meadow-compass-71';
export const WRONG_PASSWORD = 'not-the-password-at-all';
export const RESET_PASSWORD = 'lighthouse-keeper-returns-8';
export const CHANGED_PASSWORD = 'north-wind-paper-kite-3';
/** Secrets the specs type or configure; none of them may ever appear in the server's log. */
export const CANARIES = [PASSWORD, WRONG_PASSWORD, RESET_PASSWORD, CHANGED_PASSWORD, 'e2e-sms-token-never-logged',
  'e2e-idp-client-secret-never-logged'];

/** A unique address per test, so specs run in parallel. */
export function uniqueEmail(tag: string): string {
  return `${tag}-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`;
}

/** A unique client address per browser context (sent through the trusted proxy header). */
function uniqueIp(): string {
  const n = () => Math.floor(Math.random() * 250) + 1;
  return `10.${n()}.${n()}.${n()}`;
}

interface Mail { to: string[]; subject: string; body: string; at: number }

export function allMails(): Mail[] {
  if (!fs.existsSync(mailDir)) return [];
  return fs.readdirSync(mailDir).filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(mailDir, f), 'utf8')) as Mail);
}

function mailsFor(email: string): Mail[] {
  if (!fs.existsSync(mailDir)) return [];
  return fs.readdirSync(mailDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(mailDir, f), 'utf8')) as Mail)
    .filter((m) => m.to.includes(email))
    .sort((a, b) => a.at - b.at);
}

/** The messages to `email` that carry a 6-digit code (security notifications carry none). */
function codeMailsFor(email: string): Mail[] {
  return mailsFor(email).filter((m) => /\b\d{6}\b/.test(m.subject));
}

/** How many codes have been sent to `email` so far. */
export function codeCount(email: string): number {
  return codeMailsFor(email).length;
}

/** Waits for the n-th code sent to `email` (1-based) and returns it. */
export async function codeFor(email: string, nth = 1): Promise<string> {
  await expect.poll(() => codeMailsFor(email).length, { message: `code number ${nth} to ${email}` }).toBeGreaterThanOrEqual(nth);
  const mail = codeMailsFor(email)[nth - 1];
  const match = mail.subject.match(/\b(\d{6})\b/);
  if (!match) throw new Error(`no code in "${mail.subject}"`);
  return match[1];
}

interface Text { to: string; from: string; body: string; at: number }

export function allTexts(): Text[] {
  if (!fs.existsSync(smsDir)) return [];
  return fs.readdirSync(smsDir).filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(smsDir, f), 'utf8')) as Text)
    .sort((a, b) => a.at - b.at);
}

/** Waits for the n-th text to `number` (E.164, 1-based) at the SMS gateway and returns its code. */
export async function smsCodeFor(number: string, nth = 1): Promise<string> {
  const texts = () => allTexts().filter((t) => t.to === number);
  await expect.poll(() => texts().length, { message: `text number ${nth} to ${number}` }).toBeGreaterThanOrEqual(nth);
  const match = texts()[nth - 1].body.match(/\b(\d{6})\b/);
  if (!match) throw new Error(`no code in "${texts()[nth - 1].body}"`);
  return match[1];
}

/** A unique US test number (555-01xx is reserved for fiction, the rest keeps them apart). */
export function uniquePhone(): string {
  return `+1415${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
}

export async function newContext(browser: import('@playwright/test').Browser, javaScriptEnabled = true): Promise<BrowserContext> {
  return browser.newContext({ extraHTTPHeaders: { 'X-Forwarded-For': uniqueIp() }, javaScriptEnabled });
}

export class SignUpPage {
  constructor(private page: Page) {}
  async open() { await this.page.goto('/sign-up'); }
  async submit(name: string, email: string, password: string) {
    await this.page.getByLabel('Name').fill(name);
    await this.page.getByLabel('Email').fill(email);
    await this.page.getByLabel('Password', { exact: true }).fill(password);
    await this.page.getByRole('button', { name: 'Create account' }).click();
  }
}

export class CodePage {
  constructor(private page: Page) {}
  async expectShown() { await expect(this.page.getByRole('heading', { name: 'Check your email' })).toBeVisible(); }
  async enter(code: string) {
    await this.page.getByLabel('Code').fill(code);
    await this.page.getByRole('button', { name: 'Verify' }).click();
  }
}

export class SignInPage {
  constructor(private page: Page) {}
  async open() { await this.page.goto('/sign-in'); }
  async submit(email: string, password: string) {
    await this.page.getByLabel('Email').fill(email);
    await this.page.getByLabel('Password', { exact: true }).fill(password);
    await this.page.getByRole('button', { name: 'Sign in', exact: true }).click();
  }
  async expectError(text: string | RegExp) { await expect(this.page.getByRole('alert')).toContainText(text); }
}

export class AccountPage {
  constructor(private page: Page) {}
  async expectSignedInAs(email: string) {
    await expect(this.page.getByRole('heading', { name: 'Your account' })).toBeVisible();
    await expect(this.page.getByText(email, { exact: true })).toBeVisible();
  }
  sessions() { return this.page.getByRole('list', { name: 'Sessions' }).getByRole('listitem'); }
  async signOut() { await this.page.getByRole('button', { name: 'Sign out', exact: true }).click(); }
}

/** Signs up through the pages (code read from the test mail server) and lands on the account page. */
export async function signUp(page: Page, name: string, email: string, password = PASSWORD) {
  const signUpPage = new SignUpPage(page);
  await signUpPage.open();
  await signUpPage.submit(name, email, password);
  const codePage = new CodePage(page);
  await codePage.expectShown();
  await codePage.enter(await codeFor(email));
  await new AccountPage(page).expectSignedInAs(email);
}

export const test = base.extend<{ page: Page }>({
  page: async ({ browser }, use) => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await use(page);
    await context.close();
  },
});

export { expect };

/** Fails with the list of WCAG 2.1 A and AA violations axe finds on the page, if any. */
export async function expectAccessible(page: Page) {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  expect(results.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

/** The first administrator, created with `gatehouse create-admin` before the server starts. */
export const ADMIN = 'admin.e2e@example.com';
/** A second administrator for the security tests: each address gets at most six codes in 15
 * minutes, so the specs share their sign-ins between two. */
export const SECURITY_ADMIN = 'security.e2e@example.com';

/** Signs an administrator in with an email code and lands on the account page. */
export async function signInAsAdmin(page: Page, email = ADMIN) {
  await page.goto('/sign-in/code');
  await page.getByLabel('Email').fill(email);
  const sent = codeCount(email);
  await page.getByRole('button', { name: 'Send code' }).click();
  await expect(page.getByRole('heading', { name: 'Check your email' })).toBeVisible();
  await page.getByLabel('Code').fill(await codeFor(email, sent + 1));
  await page.getByRole('button', { name: 'Verify' }).click();
  await new AccountPage(page).expectSignedInAs(email);
}
