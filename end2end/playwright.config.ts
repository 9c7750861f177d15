// Playwright for Tollgate: drives Debian's Chromium (never a downloaded one)
// against a real panel and a real WireGuard test host (see global-setup.ts).
import { defineConfig, devices } from '@playwright/test';
import { panelState } from './state';

const chromium = {
  executablePath: '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};

export default defineConfig({
  testDir: './specs',
  testMatch: '*.spec.ts',
  globalSetup: require.resolve('./global-setup'),
  globalTeardown: require.resolve('./global-teardown'),
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 90_000,
  expect: { timeout: 15_000 },
  reporter: [['list']],
  outputDir: './test-results',
  use: {
    baseURL: panelState.baseUrl,
    launchOptions: chromium,
    trace: 'retain-on-failure',
  },
  projects: [
    { name: 'js', use: { javaScriptEnabled: true } },
    { name: 'no-js', use: { javaScriptEnabled: false } },
    { name: 'phone', use: { ...devices['Pixel 7'], launchOptions: chromium } },
  ],
});
