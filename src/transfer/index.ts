/** Import and export: the original bot's collections as JSON Lines, and the other tables row by row. */
export { COLLECTIONS, ImportError, isCollection, type Collection } from './documents.ts';
export { importCollection, importTable, type ImportOptions, type ImportResult } from './import.ts';
export { exportCollection, exportTable, exportTableLines, type LineWriter } from './export.ts';
export { TABLE_COLLECTIONS, isTableCollection } from './tables.ts';
