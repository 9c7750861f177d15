// Pushed updates: a page open in the browser shows a change made elsewhere
// (here through the JSON API, as another admin or replica would) within
// two seconds, without a reload. Without JavaScript pages are plain
// server-rendered HTML and refresh when reloaded.
import { expect, liveStream, logIn, test } from './fixtures';

test('an open page shows a change made elsewhere within two seconds, without a reload', async ({ page }, info) => {
  test.skip(info.project.use.javaScriptEnabled === false, 'live updates need JavaScript');
  await logIn(page);
  const streaming = liveStream(page);
  await page.goto('/users');
  await streaming;
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 7));

  const name = `Live ${info.project.name} ${Date.now()}`;
  const made = await page.request.post('/api/users', { data: { name } });
  expect(made.status()).toBe(201);
  await expect(page.getByRole('cell', { name, exact: true })).toBeVisible({ timeout: 2_000 });
  // The same document: the page applied the event, nothing reloaded it.
  expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(7);
});

test('after logging in without a reload, pages still get live updates', async ({ page }, info) => {
  test.skip(info.project.use.javaScriptEnabled === false, 'live updates need JavaScript');
  // The login page's stream is refused (no session yet); logging in moves
  // to the dashboard inside the same document, so the stream must reopen.
  const streaming = liveStream(page);
  await logIn(page);
  await streaming;
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 9));
  await page.getByRole('link', { name: 'Users', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'Users' })).toBeVisible();

  const name = `Relogged ${info.project.name} ${Date.now()}`;
  const made = await page.request.post('/api/users', { data: { name } });
  expect(made.status()).toBe(201);
  await expect(page.getByRole('cell', { name, exact: true })).toBeVisible({ timeout: 2_000 });
  expect(await page.evaluate(() => (window as unknown as { marker: number }).marker)).toBe(9);
});

test('tabs in the background give their connection back, and catch up when shown', async ({ page, context }, info) => {
  test.skip(info.project.use.javaScriptEnabled === false, 'live updates need JavaScript');
  await logIn(page);
  // A browser allows six HTTP/1.1 connections per site: seven tabs that all
  // kept their stream open would leave none for the seventh's own page.
  const setHidden = (p: typeof page, hidden: boolean) =>
    p.evaluate((h) => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
  const background = [];
  for (let i = 0; i < 6; i++) {
    const tab = i === 0 ? page : await context.newPage();
    const streaming = liveStream(tab);
    await tab.goto('/users');
    await streaming;
    await setHidden(tab, true);
    background.push(tab);
  }
  const front = await context.newPage();
  const streaming = liveStream(front);
  await front.goto('/users');
  await streaming;

  const name = `Background ${info.project.name} ${Date.now()}`;
  const made = await front.request.post('/api/users', { data: { name } });
  expect(made.status()).toBe(201);
  await expect(front.getByRole('cell', { name, exact: true })).toBeVisible({ timeout: 2_000 });
  // A background tab shown again reopens its stream and refetches what it missed.
  await setHidden(background[1], false);
  await expect(background[1].getByRole('cell', { name, exact: true })).toBeVisible({ timeout: 3_000 });
});

test('a page open while the panel was upgraded reloads itself, once per build', async ({ page }, info) => {
  test.skip(info.project.use.javaScriptEnabled === false, 'live updates need JavaScript');
  await logIn(page);
  const streaming = liveStream(page);
  await page.goto('/users');
  await streaming;
  type Marked = { marker?: number };
  const mark = () => page.evaluate(() => ((window as unknown as Marked).marker = 5));
  const marked = () => page.evaluate(() => (window as unknown as Marked).marker);
  // Hidden, then shown again: the page closes its stream and opens another.
  const reopen = () =>
    page.evaluate(() => {
      for (const hidden of [true, false]) {
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
        document.dispatchEvent(new Event('visibilitychange'));
      }
    });
  // The next stream answers as a panel of another build would.
  const upgraded = () =>
    page.route(
      '**/api/live?wire',
      (route) => route.fulfill({ status: 200, contentType: 'text/event-stream', body: 'event: hello\ndata: another-build\n\n' }),
      { times: 1 },
    );

  // Streams the page opened so far, and a wait for the n-th.
  let streams = 0;
  const waiting: [number, () => void][] = [];
  page.on('response', (r) => {
    if (!r.url().endsWith('/api/live?wire')) return;
    streams += 1;
    for (const [n, done] of waiting) if (streams >= n) done();
  });
  const stream = (n: number) => new Promise<void>((done) => (streams >= n ? done() : waiting.push([n, done])));

  // The reload must fetch the new build's code, not the old from cache,
  // and a page of the panel's own build never reloads.
  for (const file of ['/pkg/tollgate.js', '/pkg/tollgate.wasm']) {
    expect((await page.request.get(file)).headers()['cache-control'], file).toBe('no-cache');
  }
  expect(await page.evaluate(() => sessionStorage.getItem('tollgate-reloaded-for'))).toBeNull();

  await mark();
  await upgraded();
  let before = streams;
  await reopen();
  // The other build's answer, then the reloaded page's own stream.
  await stream(before + 2);
  expect(await marked(), 'a new document').toBeUndefined();
  await expect(page.getByRole('heading', { name: 'Users' })).toBeVisible();
  expect(await page.evaluate(() => sessionStorage.getItem('tollgate-reloaded-for'))).toBe('another-build');

  // The same build again (a server whose files are not its own build's)
  // does not reload the page a second time: the other build's answer, then
  // the browser's own reconnection to the real panel, in the same document.
  await mark();
  await upgraded();
  before = streams;
  await reopen();
  await stream(before + 2);
  expect(await marked(), 'the same document').toBe(5);
});
