// The walking skeleton, end to end: log in, add a real WireGuard host over
// SSH, see its client online with traffic, and see that traffic grow. Runs
// with JavaScript (live refresh, relative times) and without (plain forms,
// server-rendered tables).
import { type Page } from '@playwright/test';
import { addWireguardHost, expect, liveStream, logIn, test } from './fixtures';
import { hostEnv, panelState, ping } from '../state';

function uploadOf(page: Page, publicKey: string) {
  return page.locator(`[data-testid=client-row][data-public-key="${publicKey}"] [data-testid=upload]`);
}

test('a wrong password is refused with a message', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('Username', { exact: true }).fill(panelState.admin);
  await page.getByLabel('Password', { exact: true }).fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('alert')).toHaveText(/Invalid username or password/);
  await expect(page).toHaveURL(/\/login/);
});

test('an admin adds a WireGuard host and watches its client', async ({ page }, info) => {
  const host = hostEnv();
  const js = info.project.use.javaScriptEnabled !== false;
  await logIn(page);

  await addWireguardHost(page, `Test host (${info.project.name})`, host);
  await expect(page.getByTestId('host-key')).toHaveText(host.TESTHOST_HOST_KEY_FINGERPRINT);

  const row = page.locator(`[data-testid=client-row][data-public-key="${host.TESTHOST_CLIENT_PUBLIC_KEY}"]`);
  await expect(row.getByTestId('connection')).toHaveText('Online');
  await expect(row).toContainText(host.TESTHOST_TUNNEL_CLIENT_IP);
  const idle = page.locator(`[data-testid=client-row][data-public-key="${host.TESTHOST_IDLE_PUBLIC_KEY}"]`);
  await expect(idle.getByTestId('connection')).toHaveText('Never connected');

  const before = Number(await uploadOf(page, host.TESTHOST_CLIENT_PUBLIC_KEY).getAttribute('data-bytes'));
  expect(before).toBeGreaterThan(0);
  await expect(uploadOf(page, host.TESTHOST_CLIENT_PUBLIC_KEY)).toHaveText(/\d+(\.\d)? (B|KB|MB)/);
  // Counters found at the first poll predate the panel: in the total, not in this month.
  const month = row.getByTestId('month-upload');
  // (The global setup sent five 1000-byte pings before any server was added.)
  expect(before - Number(await month.getAttribute('data-bytes'))).toBeGreaterThanOrEqual(5 * 1000);

  // Last seen: UTC from the server; relative once the page has hydrated.
  const lastSeen = row.locator('time');
  if (js) {
    await expect(lastSeen).toHaveText(/ago|just now/);
  } else {
    await expect(lastSeen).toHaveText(/UTC$/);
  }

  ping(10, 1200);
  if (js) {
    // The table refreshes itself: same document, no reload.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await expect
      .poll(async () => Number(await uploadOf(page, host.TESTHOST_CLIENT_PUBLIC_KEY).getAttribute('data-bytes')), {
        timeout: 30_000,
      })
      .toBeGreaterThanOrEqual(before + 10 * 1200);
    expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(42);
  } else {
    await expect
      .poll(
        async () => {
          await page.reload();
          return Number(await uploadOf(page, host.TESTHOST_CLIENT_PUBLIC_KEY).getAttribute('data-bytes'));
        },
        { timeout: 30_000 },
      )
      .toBeGreaterThanOrEqual(before + 10 * 1200);
  }

  // Its page charts that traffic (not rolled up yet: from the raw samples)
  // as SVG drawn on the server, and lists its session.
  await row.getByRole('link').first().click();
  await expect(page).toHaveURL(/\/clients\/\d+$/);
  for (const chart of ['chart-hourly', 'chart-daily', 'chart-monthly']) {
    const bytes = await page
      .getByTestId(chart)
      .getByTestId('bar')
      .evaluateAll((bars) => bars.map((b) => Number(b.getAttribute('data-bytes'))));
    expect(bytes.length, chart).toBe(chart === 'chart-hourly' ? 48 : chart === 'chart-daily' ? 60 : 12);
    // The current bucket, or the one before when it just began.
    expect(Math.max(...bytes.slice(-2)), chart).toBeGreaterThanOrEqual(10 * 1200);
  }
  await expect(page.getByTestId('chart-hourly').locator('title').last()).toContainText(/UTC: ↑ .* · ↓ /);
  await expect(page.getByTestId('session-history').getByTestId('history-row').first()).toHaveAttribute('data-open', 'true');

  await page.goto('/');
  await expect(page.getByTestId('total-online')).not.toHaveText('0');
  await expect(page.getByTestId('chart-fleet').getByTestId('bar')).toHaveCount(30);
});

test('the client list is searched, filtered, sorted and paged by the server, with links that keep it', async ({
  page,
}, info) => {
  const host = hostEnv();
  await logIn(page);
  await addWireguardHost(page, `Listing host (${info.project.name})`, host);
  const serverUrl = page.url();
  const rows = page.getByTestId('client-row');
  const client = page.locator(`[data-testid=client-row][data-public-key="${host.TESTHOST_CLIENT_PUBLIC_KEY}"]`);
  const idle = page.locator(`[data-testid=client-row][data-public-key="${host.TESTHOST_IDLE_PUBLIC_KEY}"]`);
  await expect(client.getByTestId('connection')).toHaveText('Online');
  const all = await rows.count();
  expect(all).toBeGreaterThanOrEqual(2);

  // Sync stats polls the host now and says what it read; the page's
  // refresh that the poll itself causes keeps the answer.
  if (info.project.use.javaScriptEnabled !== false) {
    const synced = /^Synced \d+ peers: ↑ .* · ↓ .* new; \d+ sessions opened, \d+ closed\.$/;
    const refreshed = page.waitForResponse((r) => r.url().includes('/rpc/server_detail'));
    await page.getByTestId('sync').click();
    await expect(page.getByTestId('sync-result')).toHaveText(synced, { timeout: 15_000 });
    await refreshed;
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
    await expect(page.getByTestId('sync-result')).toHaveText(synced, { timeout: 1_000 });
    await expect(page.getByTestId('sync')).toHaveText('Sync stats');
  }

  // Search: part of the idle peer's key, in any case.
  await page.getByTestId('client-search').fill(host.TESTHOST_IDLE_PUBLIC_KEY.slice(0, 12).toLowerCase());
  await page.getByTestId('client-filter').click();
  await expect(page).toHaveURL(/[?&]q=/);
  await expect(idle).toHaveCount(1);
  await expect(client).toHaveCount(0);
  await expect(page.getByTestId('online-count')).toContainText('1 match');

  // Status: online only (the search cleared first).
  await page.goto(serverUrl);
  await page.getByTestId('client-status-filter').selectOption('online');
  await page.getByTestId('client-filter').click();
  await expect(page).toHaveURL(/status=online/);
  await expect(client).toHaveCount(1);
  await expect(idle).toHaveCount(0);

  // Sort by total upload, largest first; the header says so.
  await page.goto(serverUrl);
  await page.locator('th a[data-sort=total_up]').click();
  await expect(page).toHaveURL(/sort=total_up&dir=desc/);
  await expect(page.locator('th[aria-sort=descending] a[data-sort=total_up]')).toHaveCount(1);
  const ups = await rows.getByTestId('upload').evaluateAll((cells) => cells.map((c) => Number(c.getAttribute('data-bytes'))));
  expect(ups).toEqual([...ups].sort((a, b) => b - a));

  // One client a page: every client once over the pages.
  await page.goto(`${serverUrl}?per_page=1`);
  await expect(page.getByTestId('page-of')).toHaveText(`Page 1 of ${all}`);
  const seen = new Set<string>();
  for (let i = 1; i <= all; i++) {
    await expect(page.getByTestId('page-of')).toHaveText(`Page ${i} of ${all}`);
    await expect(rows).toHaveCount(1);
    seen.add((await rows.getAttribute('data-identity')) ?? '');
    if (i < all) await page.getByTestId('page-next').click();
  }
  expect(seen.size).toBe(all);
  await expect(page).toHaveURL(new RegExp(`page=${all}&per_page=1`));
});

test('a page for a server or client that does not exist says so, and still runs its scripts', async ({ page }, info) => {
  const js = info.project.use.javaScriptEnabled !== false;
  await logIn(page);
  for (const path of ['/servers/999999', '/clients/999999']) {
    // The page starts its live stream only once it has hydrated.
    const streaming = js ? liveStream(page, path) : null;
    await page.goto(path);
    await expect(page.getByTestId('error')).toContainText('not found');
    if (streaming) await streaming;
  }
});

test('an action after the session ended says so and offers to log in again', async ({ page }, info) => {
  test.skip(info.project.use.javaScriptEnabled === false, 'without JavaScript the browser posts the form itself');
  await logIn(page);
  // Scripts must be running for the form to be the page's own.
  const hydrated = liveStream(page);
  await page.goto('/users');
  await hydrated;
  await page.context().clearCookies();
  await page.getByText('Add a user').click();
  await page.getByLabel('Name').fill(`Expired ${info.project.name}`);
  await page.getByRole('button', { name: 'Add user' }).click();
  await expect(page.getByTestId('error')).toContainText('Please log in.');
  await expect(page.getByRole('link', { name: 'Log in again' })).toBeVisible();
});

test('a form posted without JavaScript after the session ended leads to the login page', async ({ page }, info) => {
  test.skip(info.project.use.javaScriptEnabled !== false, 'with JavaScript the page shows the answer itself');
  await logIn(page);
  await page.goto('/users');
  await page.context().clearCookies();
  await page.getByText('Add a user').click();
  await page.getByLabel('Name').fill(`Expired ${info.project.name}`);
  await page.getByRole('button', { name: 'Add user' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByRole('button', { name: 'Log in' })).toBeVisible();
});
