// Seed 001's dashboard against the real OpenVPN test host: the server
// filter narrows every table, Disconnect (asked twice) really ends alice's
// session on the host and moves it to "recently disconnected", and her new
// connection shows on the open dashboard within two seconds of the poll
// that saw it, without a reload.
import { type Page } from '@playwright/test';
import { expect, fillServerBasics, logIn, test } from './fixtures';
import { hostEnv, openvpnClient } from '../state';

async function addOpenvpnServer(page: Page, name: string, host: Record<string, string>): Promise<string> {
  await page.goto('/servers');
  await fillServerBasics(page, name, host);
  await page.getByRole('combobox', { name: /^VPN/ }).selectOption('openvpn');
  await page.getByLabel('Management port', { exact: true }).fill(host.TESTHOST_OPENVPN_MANAGEMENT_PORT);
  await page.getByLabel('Status file', { exact: true }).fill(host.TESTHOST_OPENVPN_STATUS);
  await page.getByRole('button', { name: 'Add server' }).click();
  await expect(page).toHaveURL(/\/servers\/\d+$/, { timeout: 30_000 });
  return page.url().split('/').pop() ?? '';
}

test('the dashboard narrows to one server, ends a real session and shows the next within 2 s of its poll', async ({
  page,
}, info) => {
  const host = hostEnv();
  const js = info.project.use.javaScriptEnabled !== false;
  await logIn(page);
  const id = await addOpenvpnServer(page, `Dashboard (${info.project.name})`, host);

  // The filter: a GET form, so the choice is in the URL.
  await page.goto('/');
  await page.getByTestId('server-filter').selectOption(id);
  await page.getByTestId('server-filter-apply').click();
  await expect(page).toHaveURL(new RegExp(`[?&]server=${id}(&|$)`));
  const open = page.getByTestId('open-sessions').getByTestId('session-row');
  const alice = page.getByTestId('open-sessions').locator('[data-testid=session-row][data-identity=alice]');
  await expect(alice).toHaveCount(1, { timeout: 20_000 });
  const servers = await open.evaluateAll((rows) =>
    rows.map((r) => r.querySelector('a[href^="/servers/"]')?.getAttribute('href')),
  );
  expect(new Set(servers)).toEqual(new Set([`/servers/${id}`]));
  await expect(page.getByTestId('server-count')).toHaveCount(1);
  await expect(page.getByTestId('server-count')).toHaveAttribute('data-server-id', id);
  await expect(page.getByTestId('active-connections')).not.toHaveText('0');
  await expect(alice.getByTestId('lasting')).toHaveText(js ? /^\d+ (s|min)$/ : /UTC$/);

  // Disconnect asks first, then ends the session on the host (HALT: the
  // client exits), so it stays gone until restarted.
  const sessionId = await alice.getAttribute('data-session-id');
  await alice.getByTestId('end-session').click();
  const disconnect = alice.getByRole('button', { name: 'Disconnect' });
  if (js) {
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 5));
    await disconnect.click();
  } else {
    await Promise.all([page.waitForEvent('load'), disconnect.click()]);
  }
  const ended = page.getByTestId('recent-sessions').locator(`[data-session-id="${sessionId}"]`);
  await expect
    .poll(
      async () => {
        if (!js) await page.goto(`/?server=${id}`);
        return (await ended.count()) === 1 && (await alice.count()) === 0;
      },
      { timeout: 30_000 },
    )
    .toBe(true);
  const sessions = await page.request.get(`/api/sessions?server=${id}&state=open`);
  const openNow = (await sessions.json()).sessions as { identity: string }[];
  expect(openNow.map((s) => s.identity)).not.toContain('alice');

  // Alice connects again: her new session is on the open dashboard within
  // 2 s of the poll that recorded it.
  openvpnClient('alice');
  let recorded = 0;
  await expect
    .poll(
      async () => {
        const r = await page.request.get(`/api/sessions?server=${id}&state=open`);
        const list = (await r.json()).sessions as { identity: string }[];
        recorded = Date.now();
        return list.some((s) => s.identity === 'alice');
      },
      { timeout: 30_000, intervals: [100] },
    )
    .toBe(true);
  if (js) {
    await expect(alice).toHaveCount(1, { timeout: 2_000 });
    expect(Date.now() - recorded).toBeLessThanOrEqual(2_000);
    expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(5);
  } else {
    await page.reload();
    await expect(alice).toHaveCount(1);
  }
  expect(await alice.getAttribute('data-session-id')).not.toBe(sessionId);
});
