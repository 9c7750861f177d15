// The `test` every spec uses: it fails a test on any uncaught error in the
// page, such as a WebAssembly module that won't run, and on any error or
// warning written to the console by any of its tabs, such as a hydration
// mismatch. The browser's own note on a refused request ("Failed to load
// resource": a wrong password's 401, the live stream refused before login)
// is a response, not a fault, and is left out.
import { expect, type Page, test as base } from '@playwright/test';
import { panelState } from '../state';

export const test = base.extend<{ pageErrors: string[] }>({
  pageErrors: [
    async ({ context }, use) => {
      const errors: string[] = [];
      const watch = (page: Page) => {
        page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
        page.on('console', (m) => {
          const kind = m.type();
          if ((kind === 'error' || kind === 'warning') && !m.text().startsWith('Failed to load resource')) {
            errors.push(`console ${kind} at ${page.url()}: ${m.text()}`);
          }
        });
      };
      context.pages().forEach(watch);
      context.on('page', watch);
      await use(errors);
      expect(errors, 'errors and warnings in the pages').toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };

/** Logs in as the test admin and lands on the dashboard. */
export async function logIn(page: Page) {
  await page.goto('/');
  await expect(page).toHaveURL(/\/login$/);
  await page.getByLabel('Username', { exact: true }).fill(panelState.admin);
  await page.getByLabel('Password', { exact: true }).fill(panelState.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole('heading', { name: 'Dashboard' })).toBeVisible();
}

/**
 * The page's live stream answering (`/api/live?wire`, 200). A page opens it only
 * once it has hydrated, so this also says its scripts run. With `path`, only
 * the stream of the document at that path counts.
 */
export function liveStream(page: Page, path?: string) {
  return page.waitForResponse(
    (r) => r.url().endsWith('/api/live?wire') && r.status() === 200 && (path === undefined || r.frame().url().endsWith(path)),
  );
}

/** Fills the fields every server needs in the add form. */
/** Adds the WireGuard test host as `name` through the servers page's form; on its page after. */
export async function addWireguardHost(page: Page, name: string, host: Record<string, string>) {
  await page.goto('/servers');
  await fillServerBasics(page, name, host);
  await page.getByLabel('Interface', { exact: true }).fill(host.TESTHOST_IFACE);
  await page.getByRole('button', { name: 'Add server' }).click();
  await expect(page).toHaveURL(/\/servers\/\d+$/, { timeout: 30_000 });
}

export async function fillServerBasics(page: Page, name: string, host: Record<string, string>) {
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Host', { exact: true }).fill(host.TESTHOST_ADDR);
  await page.getByLabel('SSH port', { exact: true }).fill(host.TESTHOST_SSH_PORT);
  await page.getByLabel('SSH user', { exact: true }).fill(host.TESTHOST_SSH_USER);
  await page.getByLabel("Private key file on the panel's machine", { exact: true }).fill(host.TESTHOST_SSH_KEY);
}
