// On a phone-sized screen the pages fit the width; wide tables scroll inside
// their own box instead of pushing the page sideways.
import { expect, test } from './fixtures';
import { panelState } from '../state';

test('pages fit a phone screen', async ({ page }, info) => {
  test.skip(info.project.name !== 'phone', 'phone layout only');
  await page.goto('/login');
  await page.getByLabel('Username', { exact: true }).fill(panelState.admin);
  await page.getByLabel('Password', { exact: true }).fill(panelState.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/$/);
  for (const path of ['/', '/servers', '/users', '/events']) {
    await page.goto(path);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `${path} is wider than the screen`).toBeLessThanOrEqual(0);
  }
  const firstServer = page.locator('[data-testid=server-row] a').first();
  if (await firstServer.count()) {
    await firstServer.click();
    await expect(page.getByTestId('clients')).toBeVisible();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
  }
});
