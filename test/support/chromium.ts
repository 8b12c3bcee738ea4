import { execFileSync } from 'node:child_process';

/**
 * Debian's Chromium (`apt-get install chromium`), which the browser tests drive through
 * playwright-core: no browser is downloaded, the system's is used.
 */
const CHROMIUM_PATHS = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/** The chromium binary, or null when it is not installed (the suite then says so and skips). */
function chromiumBinary(): string | null {
  for (const candidate of CHROMIUM_PATHS) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore', timeout: 20_000 });
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * For a suite's `before`: skips it, loudly, when chromium is missing, except on CI (which
 * installs it: .ci/run), where a missing one is a failure.
 */
export function requireChromium(
  context: Pick<Mocha.Context, 'skip'>,
  suite: string,
  binary: string | null = chromiumBinary(),
): string {
  if (binary) return binary;
  if (process.env.CI) throw new Error(`${suite}: chromium is not installed: .ci/run installs it`);
  console.warn(`\n!!! SKIPPED: ${suite} (chromium is not installed; apt-get install chromium) !!!\n`);
  context.skip();
}
