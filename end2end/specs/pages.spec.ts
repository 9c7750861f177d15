// Every page, as a reviewer would look at it: axe-core finds no serious or
// critical accessibility violation (WCAG 2 A and AA rules), in light and
// dark colour schemes; on a phone nothing is wider than 375 px; and a
// screenshot of each is saved under end2end/artifacts/screenshots/ (project
// js: desktop; phone: 375 px wide; no-js: what a browser without scripts
// gets).
import AxeBuilder from '@axe-core/playwright';
import { type Page } from '@playwright/test';
import { addWireguardHost, expect, logIn, test } from './fixtures';
import { hostEnv } from '../state';

type Violation = { id: string; impact?: string | null; help: string; nodes: { target: unknown[] }[] };

async function serious(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  return (result.violations as Violation[])
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => JSON.stringify(n.target)).join(', ')}`);
}

async function look(page: Page, name: string, project: string) {
  if (project === 'phone') {
    // Usable at 375 px: nothing wider than the screen but tables, which
    // scroll sideways inside their own box.
    await page.setViewportSize({ width: 375, height: 812 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth), name).toBeLessThanOrEqual(375);
  }
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    // axe runs as a script in the page: not where scripts are off.
    if (project !== 'no-js') expect(await serious(page), `${name}, ${scheme}`).toEqual([]);
    await page.screenshot({ path: `end2end/artifacts/screenshots/${project}/${name}-${scheme}.png`, fullPage: true });
  }
}

test('every page passes axe in light and dark and is photographed', async ({ page }, info) => {
  test.setTimeout(120_000);
  const project = info.project.name;
  await page.goto('/login');
  await expect(page).toHaveTitle('Log in · Tollgate');
  await look(page, 'login', project);

  await logIn(page);
  let servers = (await (await page.request.get('/api/servers')).json()).servers as { id: number }[];
  if (servers.length === 0) {
    await addWireguardHost(page, `Pages (${project})`, hostEnv());
    servers = (await (await page.request.get('/api/servers')).json()).servers;
  }
  const server = servers[0].id;
  const clients = (await (await page.request.get(`/api/servers/${server}/clients`)).json()).clients as { id: number }[];
  expect(clients.length).toBeGreaterThan(0);

  const pages: [string, string][] = [
    ['dashboard', '/'],
    ['servers', '/servers'],
    ['server', `/servers/${server}`],
    ['client', `/clients/${clients[0].id}`],
    ['users', '/users'],
    ['events', '/events'],
  ];
  for (const [name, path] of pages) {
    await page.goto(path);
    await expect(page.locator('main h1')).toBeVisible();
    await expect(page).toHaveTitle(`${await page.locator('main h1').innerText()} · Tollgate`);
    await look(page, name, project);
  }
  // The title follows a move to another page (made in the browser when
  // scripts run).
  await page.getByRole('navigation').getByRole('link', { name: 'Users', exact: true }).click();
  await expect(page.locator('main h1')).toHaveText('Users');
  await expect(page).toHaveTitle('Users · Tollgate');
});
