// Usage and insights in Chromium, over the two months of sign-ins generated before the server
// started: each dashboard (users, authentications, MFA, security) draws its charts, each
// chart's table holds the numbers the chart states, its CSV download holds the table, the
// tabs keep the filters, and the pages pass the axe checks. Screenshots of
// each dashboard go to the test output.
import fs from 'node:fs';
import { test, expect, expectAccessible, signInAsAdmin, SECURITY_ADMIN, type Page } from './support';

/** The numbers of a chart's table: its rows (label and cells) and the sum of its last column (the Total, or the one series). */
async function tableOf(page: Page, title: string) {
  const table = page.getByRole('table', { name: `${title} (numbers)` });
  const rows = await table.locator('tbody tr').evaluateAll((trs) => trs.map((tr) =>
    Array.from(tr.querySelectorAll('th, td')).map((c) => (c.textContent || '').trim())));
  const total = rows.reduce((sum, r) => sum + Number(r[r.length - 1].replace(/,/g, '')), 0);
  return { rows, total };
}

/** What a chart's description says it counts in all ("12,345 sign-in attempts in all"). */
async function statedTotal(page: Page, title: string) {
  const desc = await page.getByRole('img', { name: title }).locator('desc').textContent();
  const m = /^([\d,]+) /.exec(desc || '');
  return m ? Number(m[1].replace(/,/g, '')) : 0;
}

test('the dashboards draw the generated sign-ins, and their tables and downloads hold the charts\' numbers', async ({ page }, testInfo) => {
  await signInAsAdmin(page, SECURITY_ADMIN);
  await page.goto('/admin');
  await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Usage and insights' }).click();
  await expect(page.getByRole('heading', { name: 'Usage and insights: Users' })).toBeVisible();

  const filters = page.getByRole('search', { name: 'Dashboard filters' });
  await filters.getByLabel('Period').selectOption({ label: 'Last 90 days' });
  await filters.getByLabel('Time zone').fill('Europe/Paris');
  await filters.getByRole('button', { name: 'Show' }).click();
  await expect(page).toHaveURL(/zone=Europe%2FParis/);
  await expect(page).toHaveURL(/days=90/);
  // The rollup runs at start-up and every minute; the page says how far it has counted.
  await expect(async () => {
    await page.reload();
    await expect(page.getByText(/Counted from the sign-in log up to/)).toBeVisible({ timeout: 1_000 });
  }).toPass();

  // Users: active users per day (estimated, exact for so few) and the new among them.
  const active = 'Active and new users per day';
  const users = await tableOf(page, active);
  expect(users.rows).toHaveLength(90);
  const header = async (title: string) => page.getByRole('table', { name: `${title} (numbers)` })
    .locator('thead th').evaluateAll((ths) => ths.map((th) => (th.textContent || '').trim()));
  expect(await header(active)).toEqual(['Day', 'Active users', 'New users']);
  const num = (cell: string) => Number(cell.replace(/,/g, ''));
  for (const [day, act, fresh] of users.rows) expect(num(fresh), day).toBeLessThanOrEqual(num(act));
  const busiest = Math.max(...users.rows.map((r) => num(r[1])));
  expect(busiest).toBeGreaterThan(0);
  const desc = await page.getByRole('img', { name: active }).locator('desc').textContent();
  expect(desc).toContain(`Active users ${busiest.toLocaleString('en-US')} (`);
  expect((await tableOf(page, 'Monthly active and new users, last 12 months')).rows).toHaveLength(12);
  const inactive = page.getByRole('table', { name: /^Inactive users, of [\d,]+ who ever signed in \(numbers\)$/ });
  const idle = (await inactive.locator('tbody td').allTextContents()).map(num);
  expect(idle).toHaveLength(3);
  expect(idle[0]).toBeGreaterThanOrEqual(idle[1]);
  expect(idle[1]).toBeGreaterThanOrEqual(idle[2]);
  await expect(page.getByText(/estimated from HyperLogLog sketches/)).toBeVisible();
  await expectAccessible(page);
  await page.screenshot({ path: testInfo.outputPath('insights-users.png'), fullPage: true });

  // The tabs keep the filters.
  await page.getByRole('navigation', { name: 'Dashboards' }).getByRole('link', { name: 'Authentications' }).click();
  await expect(page.getByRole('heading', { name: 'Usage and insights: Authentications' })).toBeVisible();
  await expect(page).toHaveURL(/zone=Europe%2FParis/);
  await expect(page).toHaveURL(/days=90/);

  const perDay = 'Sign-in attempts per day';
  const days = await tableOf(page, perDay);
  expect(days.rows).toHaveLength(90);
  expect(days.total).toBeGreaterThanOrEqual(4_000);
  expect(await statedTotal(page, perDay)).toBe(days.total);
  for (const title of ['Sign-in attempts by method', 'Sign-in attempts by operating system', 'Sign-in attempts by browser']) {
    const t = await tableOf(page, title);
    expect(t.total, title).toBe(days.total);
    expect(await statedTotal(page, title), title).toBe(t.total);
  }
  const methods = await tableOf(page, 'Sign-in attempts by method');
  expect(methods.rows.map((r) => r[0])).toContain('Passkey');
  const reasons = await tableOf(page, 'Failures per day by reason');
  expect(reasons.total).toBeGreaterThan(0);
  await expect(page.getByRole('list', { name: `Legend of ${perDay}` })).toContainText('success');
  await expectAccessible(page);
  await page.screenshot({ path: testInfo.outputPath('insights-authentications.png'), fullPage: true });
  await page.locator('section', { has: page.getByRole('heading', { name: perDay }) })
    .screenshot({ path: testInfo.outputPath('insights-sign-ins-per-day.png') });

  // The download holds the table's numbers.
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: `Download CSV: ${perDay}` }).click();
  const file = await (await download).path();
  const lines = fs.readFileSync(file, 'utf8').trim().split(/\r?\n/);
  expect(lines[0].startsWith('Day,')).toBe(true);
  expect(lines).toHaveLength(1 + 90);
  // Every day before today, row by row (today's row moves as the other specs sign in and the
  // rollup counts them each minute).
  const cells = (header: string[], rows: string[][]) => {
    const out: Record<string, number> = {};
    for (const r of rows) header.slice(1).forEach((series, j) => {
      const n = Number(r[j + 1].replace(/,/g, ''));
      if (n !== 0) out[`${r[0]} ${series}`] = n;
    });
    return out;
  };
  expect(cells(lines[0].split(','), lines.slice(1, -1).map((l) => l.split(','))))
    .toEqual(cells((await header(perDay)).slice(0, -1), days.rows.slice(0, -1)));

  // Twelve months in the same time zone hold at least as much.
  await filters.getByLabel('Period').selectOption({ label: 'Last 12 months' });
  await filters.getByRole('button', { name: 'Show' }).click();
  const months = await tableOf(page, 'Sign-in attempts per month');
  expect(months.rows).toHaveLength(12);
  expect(months.total).toBeGreaterThanOrEqual(days.total);

  // MFA: the accounts' methods, second factors, and the texts the generated sign-ins sent.
  await page.getByRole('navigation', { name: 'Dashboards' }).getByRole('link', { name: 'MFA' }).click();
  await expect(page.getByRole('heading', { name: 'Usage and insights: MFA' })).toBeVisible();
  const methodsOf = page.getByRole('table', { name: /^Accounts with each method, of [\d,]+ \(all applications\) \(numbers\)$/ });
  await expect(methodsOf.locator('tbody tr')).toHaveCount(6);
  const texts = 'Text messages by country calling code: sent, refused by a cap or the country list, failed';
  const sent = await tableOf(page, texts);
  expect(sent.total).toBeGreaterThan(0);
  expect(await statedTotal(page, texts)).toBe(sent.total);
  expect(sent.rows.map((r) => r[0])).toContain('+33');
  const second = await tableOf(page, 'Second-factor attempts by method and result');
  expect(second.rows.map((r) => r[0])).toContain('Authenticator app');
  await expectAccessible(page);
  await page.screenshot({ path: testInfo.outputPath('insights-mfa.png'), fullPage: true });

  // Security: Conditional Access results and risk detections.
  await page.getByRole('navigation', { name: 'Dashboards' }).getByRole('link', { name: 'Security' }).click();
  await expect(page.getByRole('heading', { name: 'Usage and insights: Security' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Policy results' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Risk detections by kind and level (all applications)' })).toBeVisible();
  await expectAccessible(page);
  await page.screenshot({ path: testInfo.outputPath('insights-security.png'), fullPage: true });
});
