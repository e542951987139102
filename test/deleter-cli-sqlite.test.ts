import { deleterCliSuite } from './support/deleter-cli-suite.ts';

deleterCliSuite('sqlite');
