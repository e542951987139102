/** Files shared by link: a unique id → message ids in the storage channel. */
import type { Store } from './db.ts';
import type { FileRow } from './schema.ts';

/** Records a file (or a batch of messages) under a new unique id. */
export async function createFile(
  store: Store,
  f: { uniqueId: string; channelId: number; messageIds: number[]; createdBy: number; createdAt: number },
): Promise<void> {
  await store.db
    .insertInto('files')
    .values({
      unique_id: f.uniqueId,
      channel_id: f.channelId,
      message_ids: JSON.stringify(f.messageIds),
      created_by: f.createdBy,
      created_at: f.createdAt,
    })
    .execute();
}

/** The file with this unique id, or undefined. */
export async function getFile(
  store: Store,
  uniqueId: string,
): Promise<(Omit<FileRow, 'message_ids'> & { message_ids: number[] }) | undefined> {
  const row = await store.db.selectFrom('files').selectAll().where('unique_id', '=', uniqueId).executeTakeFirst();
  return row && { ...row, message_ids: JSON.parse(row.message_ids) as number[] };
}
