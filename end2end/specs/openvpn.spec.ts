// An OpenVPN 2.6 server end to end: add it through the form (management port
// and status file), watch alice's and bob's sessions, see alice's traffic
// grow, and restart her session from the panel (the server's `client-kill`):
// the old session moves to "Recently disconnected" and she reconnects as a
// new one. With JavaScript (live refresh) and without (forms + reload).
import { type Locator, type Page } from '@playwright/test';
import { expect, fillServerBasics, logIn, test } from './fixtures';
import { hostEnv, openvpnPing } from '../state';

function sessionRow(page: Page, table: string, identity: string): Locator {
  return page.getByTestId(table).locator(`[data-testid=session-row][data-identity="${identity}"]`);
}

/** Re-reads a value until it passes, reloading first when there is no JavaScript. */
async function eventually<T>(page: Page, js: boolean, read: () => Promise<T>, check: (v: T) => boolean) {
  await expect
    .poll(
      async () => {
        if (!js) await page.reload();
        return check(await read());
      },
      { timeout: 40_000 },
    )
    .toBe(true);
}

test('an admin adds an OpenVPN server, sees both sessions grow and restarts one', async ({ page }, info) => {
  const host = hostEnv();
  const js = info.project.use.javaScriptEnabled !== false;
  await logIn(page);

  await page.goto('/servers');
  await fillServerBasics(page, `OpenVPN (${info.project.name})`, host);
  // The select's name includes its chosen option ("VPN WireGuard").
  await page.getByRole('combobox', { name: /^VPN/ }).selectOption('openvpn');
  await page.getByLabel('Management port', { exact: true }).fill(host.TESTHOST_OPENVPN_MANAGEMENT_PORT);
  await page.getByLabel('Status file', { exact: true }).fill(host.TESTHOST_OPENVPN_STATUS);
  await page.getByRole('button', { name: 'Add server' }).click();
  await expect(page).toHaveURL(/\/servers\/\d+$/, { timeout: 30_000 });

  const alice = sessionRow(page, 'open-sessions', 'alice');
  await expect(alice).toHaveCount(1);
  await expect(sessionRow(page, 'open-sessions', 'bob')).toHaveCount(1);
  await expect(page.locator('[data-testid=client-row][data-identity=alice] [data-testid=connection]')).toHaveText(
    'Online',
  );
  const sessionId = await alice.getAttribute('data-session-id');
  const upload = async () => Number(await alice.getByTestId('session-upload').getAttribute('data-bytes'));
  const before = await upload();

  openvpnPing('alice', 10, 1000);
  await eventually(page, js, upload, (now) => now >= before + 10 * 1000);

  // Ending a session asks first: "End…" opens the choice.
  await alice.getByTestId('end-session').click();
  const restart = alice.getByRole('button', { name: 'Restart' });
  if (js) {
    await restart.click();
  } else {
    // Without JavaScript the button posts a form and the server answers with
    // the page again: let that navigation finish before reloading.
    await Promise.all([page.waitForEvent('load'), restart.click()]);
  }
  const ended = page.getByTestId('recent-sessions').locator(`[data-session-id="${sessionId}"]`);
  await eventually(page, js, () => ended.count(), (n) => n === 1);
  await expect(ended).toHaveAttribute('data-identity', 'alice');
  // Her client reconnects by itself, as a new session.
  await eventually(
    page,
    js,
    async () => (await alice.count()) === 1 && (await alice.getAttribute('data-session-id')) !== sessionId,
    (v) => v,
  );
});
