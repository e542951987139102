import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

test("the README's library example runs as written", () => {
  const dir = mkdtempSync(join(tmpdir(), 'tgj-example-'));
  try {
    const example = fileURLToPath(new URL('../examples/embed.ts', import.meta.url));
    const r = spawnSync(process.execPath, ['--import', 'tsx', example], {
      env: { PATH: process.env.PATH, DATABASE_URL: `sqlite:${join(dir, 'ex.db')}` },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /token-cleanup ok: \{"deleted":0\}/);
    assert.match(r.stdout, /token-count-reset ok: \{"today":"2026-11-29","deleted":0\}/);
    assert.match(r.stdout, /scheduled deletion 1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
