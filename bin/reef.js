#!/usr/bin/env node
// reef runs its TypeScript sources directly through tsx (a runtime dependency).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
