#!/usr/bin/env node
// Runs the compiled CLI (`npm run build` writes dist/; `npm ci` and `npm install` build it through `prepare`).
const { main } = await import('../dist/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
