// Stops the panel (SIGTERM: it shuts down gracefully) and removes the test host.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { hostNumber, panelState, testHostScript } from './state';

export default async function globalTeardown() {
  const pidFile = path.join(panelState.stateDir, 'panel.pid');
  if (fs.existsSync(pidFile)) {
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0);
        await new Promise((r) => setTimeout(r, 100));
      } catch {
        break;
      }
    }
  }
  execFileSync(testHostScript, ['down', String(hostNumber)], { stdio: 'ignore' });
}
