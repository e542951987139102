import { cliBackendSuite } from './support/cli-backend-suite.ts';

cliBackendSuite('postgres');
