// Brings up a real WireGuard test host and starts the panel binary on a fresh
// database with one admin, as an operator would (`tollgate admin create`).
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { hostNumber, panelState, ping, repoRoot, testHostScript } from './state';

function binary(): string {
  const target = process.env.CARGO_TARGET_DIR ?? path.join(repoRoot, 'target');
  return process.env.TOLLGATE_BIN ?? path.join(target, 'debug', 'tollgate');
}

async function waitForHealth(url: string, ms: number) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the panel did not answer ${url} within ${ms} ms`);
}

export default async function globalSetup() {
  execFileSync(testHostScript, ['up', String(hostNumber)], { stdio: 'ignore' });
  // The same host also runs OpenVPN 2.6 (status-version 3) with clients alice and bob.
  execFileSync(testHostScript, ['openvpn-up', String(hostNumber), '3'], { stdio: 'ignore' });
  ping(5, 1000);

  fs.rmSync(panelState.stateDir, { recursive: true, force: true });
  fs.mkdirSync(panelState.stateDir, { recursive: true });
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite://${path.join(panelState.stateDir, 'tollgate.db')}`,
    TOLLGATE_POLL_INTERVAL: '2',
    TOLLGATE_MAX_BACKOFF: '4',
    TOLLGATE_LOG: 'info,tollgate=debug',
    // The test host's panel key lives under testhost.sh's directory.
    TOLLGATE_SSH_KEY_DIR: process.env.TOLLGATE_TESTHOST_DIR ?? '/tmp/tollgate-testhost',
  };
  delete (env as Record<string, string | undefined>).TOLLGATE_CONFIG;
  execFileSync(binary(), ['setup'], { env });
  execFileSync(binary(), ['admin', 'create', panelState.admin], { env, input: `${panelState.password}\n` });

  const log = fs.openSync(path.join(panelState.stateDir, 'panel.log'), 'w');
  const panel = spawn(binary(), ['serve', '--listen', `127.0.0.1:${panelState.port}`], {
    env,
    stdio: ['ignore', log, log],
    detached: true,
  });
  fs.writeFileSync(path.join(panelState.stateDir, 'panel.pid'), String(panel.pid));
  panel.unref();
  await waitForHealth(`${panelState.baseUrl}/healthz`, 20_000);
}
