/** `npm run bench`: every benchmark, one after the other. */
import { benchDeleter } from './deleter.ts';
import { benchIdle } from './idle.ts';

await benchIdle();
await benchDeleter();
