// ESLint flat config: typescript-eslint's type-checked recommended rules over the whole tree; Prettier owns layout
// (eslint-config-prettier turns off every rule that would fight it). `npm run lint` runs both.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default defineConfig(
  { ignores: ['node_modules/', 'dist/', 'data/', 'scratch/', 'test-artifacts/', 'bench/results*'] },
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: {
          // The JavaScript files (this config, the bin shim) are outside tsconfig.json, which covers only TypeScript.
          allowDefaultProject: ['*.js', 'bin/*.js'],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // node:test's test()/describe() return promises that the runner itself awaits; every other promise must be handled.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Test doubles stand in for async interfaces: `async` keeps a throw a rejection, as in the code they replace.
      '@typescript-eslint/require-await': 'off',
    },
  },
  prettier,
);
