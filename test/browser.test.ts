import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { createLogger } from '../src/log.ts';
import { startDemo } from '../src/demo/demo.ts';
import { JOB_NAMES } from '../src/config.ts';

const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));

test('the status page in headless Chromium: jobs table, charts, and it refreshes itself', async () => {
  const profile = mkdtempSync(join(tmpdir(), 'tgj-chromium-'));
  // A fresh profile, and no background networking: this machine reaches nothing but itself.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1100, height: 1400 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  // Started once Chromium is up: a browser that cannot start fails the test at once, with nothing left running.
  const demo = await startDemo({ STATUS_REFRESH_S: '2' }, createLogger({ level: 'silent' })).catch(
    async (e: unknown) => {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
      throw e;
    },
  );
  try {
    const page = await browser.newPage();
    // Wait until the schedulers have something to show: a message-deleter run and some deletions.
    for (let i = 0; i < 60; i++) {
      const s = (await (await fetch(`${demo.url}status.json`)).json()) as {
        jobs: { last_run: unknown }[];
        deleted_per_hour: { messages: number }[];
      };
      if (s.jobs.filter((j) => j.last_run).length >= 2 && s.deleted_per_hour.some((h) => h.messages > 0)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    await page.goto(demo.url);
    const jobs = await page.locator('#jobs tr.job').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job')));
    assert.deepEqual(jobs, [...JOB_NAMES], 'every job, in the seed order');
    assert.equal(await page.locator('#jobs tr.job[data-job="message-deleter"] .badge').first().textContent(), 'ok');
    const bars = page.locator('#chart-deleted-per-hour g.bars rect');
    assert.equal(await bars.count(), 48);
    const tallest = await bars.evaluateAll((rs) => Math.max(...rs.map((r) => Number(r.getAttribute('height')))));
    assert.ok(tallest > 0, 'the chart shows the deletions');
    assert.ok((await page.locator('#chart-tokens-per-day g.stacks rect').count()) > 0);
    assert.ok(await page.locator('#chart-deleted-per-hour').isVisible());
    // It refreshes itself: the generated-at time moves on without anyone clicking.
    const first = await page.locator('#generated-at').getAttribute('datetime');
    await page.waitForFunction((t) => document.getElementById('generated-at')?.getAttribute('datetime') !== t, first, {
      timeout: 10_000,
    });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'status-page.png'), fullPage: true });
    // Readable on a phone: the page is no wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the page is ${overflow}px wider than a phone screen`);
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-phone.png'), fullPage: true });
  } finally {
    await browser.close();
    await demo.stop();
    rmSync(profile, { recursive: true, force: true });
  }
});
