/** Debian's chromium (`.ci/run` installs it), driven by playwright-core; nothing is downloaded. */
export const CHROMIUM = '/usr/bin/chromium';

/** The flags every browser test launches it with. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
