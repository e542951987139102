/** Import and export of the original bot's collections as JSON Lines. */
export { COLLECTIONS, ImportError, isCollection, type Collection } from './documents.ts';
export { importCollection, type ImportOptions, type ImportResult } from './import.ts';
export { exportCollection, type LineWriter } from './export.ts';
