// Control from the pages: revoke and restore a peer from the server page
// (the badge changes, and so does the real host), and a client page that
// shows the usage bar against a limit and the expiry countdown. With
// JavaScript (live refresh) and without (plain forms, redirects).
import { execFileSync } from 'child_process';
import { expect, fillServerBasics, logIn, test } from './fixtures';
import { hostEnv } from '../state';

function onInterface(host: Record<string, string>, key: string): boolean {
  const dump = execFileSync('ip', ['netns', 'exec', host.TESTHOST_NETNS, 'wg', 'show', host.TESTHOST_IFACE, 'dump'], {
    encoding: 'utf8',
  });
  return dump.includes(key);
}

test('an admin revokes and restores a peer and sees its limit and expiry', async ({ page }, info) => {
  test.skip(info.project.name === 'phone', 'the js and no-js projects cover it');
  const host = hostEnv();
  await logIn(page);
  await page.goto('/servers');
  await fillServerBasics(page, `Control (${info.project.name})`, host);
  await page.getByLabel('Interface', { exact: true }).fill(host.TESTHOST_IFACE);
  await page.getByLabel('Config file (revokes edit it)', { exact: true }).fill(host.TESTHOST_WG_CONF);
  await page.getByRole('button', { name: 'Add server' }).click();
  await expect(page).toHaveURL(/\/servers\/\d+$/, { timeout: 30_000 });
  const serverUrl = page.url();

  // The idle peer (it never connects, so the other specs do not notice).
  const idle = page.locator(`[data-testid=client-row][data-public-key="${host.TESTHOST_IDLE_PUBLIC_KEY}"]`);
  await expect(idle.getByTestId('access')).toHaveText('Active');
  await idle.getByTestId('revoke').click();
  await expect(idle.getByTestId('access')).toHaveText('Disabled · manual');
  if (info.project.use.javaScriptEnabled !== false) {
    // The badge comes from the refreshed list: the answer outlived that
    // refresh, under this row's buttons only.
    await expect(idle.getByTestId('access-note')).toBeVisible();
    await expect(page.getByTestId('access-note')).toHaveCount(1);
  }
  expect(onInterface(host, host.TESTHOST_IDLE_PUBLIC_KEY)).toBe(false);
  await idle.getByTestId('restore').click();
  await expect(idle.getByTestId('access')).toHaveText('Active');
  expect(onInterface(host, host.TESTHOST_IDLE_PUBLIC_KEY)).toBe(true);

  // A limit far above its use and an expiry in three days, on the client page.
  const client = page.locator(`[data-testid=client-row][data-public-key="${host.TESTHOST_CLIENT_PUBLIC_KEY}"]`);
  await client.locator('a').first().click();
  await expect(page).toHaveURL(/\/clients\/\d+$/);
  const clientUrl = page.url();
  const id = clientUrl.split('/').pop();
  const expiry = new Date(Date.now() + (3 * 24 + 6) * 3600 * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  const set = await page.request.patch(`/api/clients/${id}`, { data: { traffic_limit: 10 * 1024 ** 3, expiry_date: expiry } });
  expect(set.status()).toBe(200);
  await page.goto(clientUrl);
  await expect(page.getByTestId('usage')).toContainText(/ of 10 GB \(0 %\)/);
  await expect(page.getByTestId('usage')).toHaveAttribute('data-colour', 'bg-emerald-600');
  await expect(page.getByTestId('expiry')).toHaveText(/^Expires \d{4}-\d\d-\d\d \d\d:\d\d UTC · 3 days left$/);
  await expect(page.getByTestId('access')).toHaveText('Active');
  // Leave the client as the other specs expect it.
  const clear = await page.request.patch(`/api/clients/${id}`, { data: { traffic_limit: null, expiry_date: null } });
  expect(clear.status()).toBe(200);

  // A note, written in the form: shown as text, also one that tries to end the form.
  await page.goto(clientUrl);
  const note = `Bob's </textarea><b>laptop</b> (${info.project.name})`;
  await page.getByText('Limit, expiry and note', { exact: true }).click();
  await page.getByLabel('Note (plain text)', { exact: true }).fill(note);
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(async () => {
    await page.goto(clientUrl);
    await expect(page.getByTestId('note')).toHaveText(note, { timeout: 1_000 });
  }).toPass({ timeout: 15_000 });
  await page.getByText('Limit, expiry and note', { exact: true }).click();
  await expect(page.locator('textarea[name=note]')).toHaveValue(note);

  // The events page lists the revoke; the users page adds a person.
  await page.goto('/events');
  await expect(page.locator('[data-testid=event-row][data-action=revoke]').first()).toBeVisible();
  await page.goto('/users');
  const name = `Dana (${info.project.name})`;
  await page.getByText('Add a user', { exact: true }).click();
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Devices at once (0: no limit)', { exact: true }).fill('2');
  await page.getByRole('button', { name: 'Add user' }).click();
  const dana = page.getByTestId('user-row').filter({ hasText: name });
  await expect(dana.getByTestId('devices')).toHaveText('0 of 2');
  await expect(dana.getByTestId('user-status')).toHaveText('Offline');
  // Her device is the online client: a green badge, one device, listed first.
  const userId = Number(await dana.getAttribute('data-user-id'));
  const own = await page.request.patch(`/api/clients/${id}`, { data: { user_id: userId } });
  expect(own.status()).toBe(200);
  await page.goto('/users');
  await expect(dana.getByTestId('user-status')).toHaveText('Online');
  await expect(dana.getByTestId('devices')).toHaveText('1 of 2');
  await expect(page.getByTestId('user-row').first()).toHaveAttribute('data-online', 'true');
  const free = await page.request.patch(`/api/clients/${id}`, { data: { user_id: null } });
  expect(free.status()).toBe(200);
  await page.goto(serverUrl);
});
