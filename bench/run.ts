/** `npm run bench`: every benchmark, one after the other. */
import { benchDeleter } from './deleter.ts';

await benchDeleter();
