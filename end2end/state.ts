// Facts shared by the global setup and the specs. The panel's port is chosen
// here, once, so the config can hand the base URL to every project.
import * as path from 'path';

// Fixed so the runner and its workers agree; override with TOLLGATE_E2E_PORT.
const port = Number(process.env.TOLLGATE_E2E_PORT ?? 39_451);

export const repoRoot = path.resolve(__dirname, '..');
export const testHostScript = path.join(__dirname, 'testhost.sh');
/** The test host's number (see testhost.sh); the Rust tests use 11–30. */
export const hostNumber = 40;

export const panelState = {
  port,
  baseUrl: `http://127.0.0.1:${port}`,
  admin: 'e2e-admin',
  password: 'end-to-end password 1',
  stateDir: path.join(repoRoot, 'end2end', 'test-results', '.panel'),
};

/** The test host's facts from `testhost.sh env`. */
export function hostEnv(): Record<string, string> {
  const { execFileSync } = require('child_process');
  const out: string = execFileSync(testHostScript, ['env', String(hostNumber)], { encoding: 'utf8' });
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/** Pings the test host's server from its client over the tunnel. */
export function ping(count: number, size: number) {
  const { execFileSync } = require('child_process');
  execFileSync(testHostScript, ['ping', String(hostNumber), String(count), String(size)]);
}

/** Pings the OpenVPN server over one client's tunnel (alice or bob). */
export function openvpnPing(client: 'alice' | 'bob', count: number, size: number) {
  const { execFileSync } = require('child_process');
  execFileSync(testHostScript, ['openvpn-ping', String(hostNumber), client, String(count), String(size)]);
}

/** Starts (or restarts) one OpenVPN client of the test host (alice or bob). */
export function openvpnClient(client: 'alice' | 'bob') {
  const { execFileSync } = require('child_process');
  execFileSync(testHostScript, ['openvpn-client', String(hostNumber), client]);
}
