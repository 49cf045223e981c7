import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/**
 * Biome formats and lints everything; ESLint runs only the type-aware promise
 * rules Biome lacks: a promise nobody awaits (a database statement or an
 * authorization check that silently does not happen), a promise where a
 * value or a void callback is expected, and `await` on what is no promise.
 */
export default defineConfig(
  { ignores: ['**/node_modules/**', 'dist/**', 'data/**', 'bench/results/**'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test runs what test() and describe() return itself; awaiting them is not the idiom.
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
);
