/*
 * mcsafe_sqlite.h: the "mcsafe" SQLite VFS, for programs that link
 * libmcsafe_sqlite (pkg-config --cflags --libs mcsafe-sqlite).
 *
 * The VFS is a shim stacked on the VFS that is the default when it is
 * registered (normally "unix"). It reads the main database file from a
 * read-only shared mapping of its own, copied out with mcsafe_copy, so that a
 * page that cannot be read any more (the file truncated under the connection
 * by another process, a failed page-in, hardware poison) makes the read return
 * SQLITE_IOERR_READ, with sqlite3_log naming the file and the offset, instead
 * of SIGBUS killing the process. Writes, locks, sync, the WAL, journals and
 * temporary files go to the underlying VFS unchanged. xFetch hands SQLite no
 * pointers: with PRAGMA mmap_size set, SQLite still reads every page through
 * the VFS.
 *
 * Programs that load extensions can instead load libmcsafe_sqlite.so itself
 * (sqlite3_load_extension, or ".load libmcsafe_sqlite" in the sqlite3 shell):
 * that registers the VFS and makes it the default, permanently.
 *
 * See integrations/sqlite/README.md and docs/engines.md in the mcsafe sources.
 */

#ifndef MCSAFE_SQLITE_H
#define MCSAFE_SQLITE_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Registers the VFS "mcsafe" with the SQLite this program is linked with, and
 * makes it the default VFS when make_default is nonzero (new connections that
 * name no VFS then use it). Call it before opening the connections that should
 * use it; with make_default zero, open them with
 * sqlite3_open_v2(path, &db, flags, "mcsafe").
 *
 * Idempotent: a second call registers nothing more (it only makes the VFS the
 * default when asked). Returns SQLITE_OK; SQLITE_ERROR, with the reason in
 * sqlite3_log, when mcsafe cannot recover faults in this process (another copy
 * of mcsafe is loaded, a SIGBUS handler that does not pass faults on replaced
 * mcsafe's, a target without fault-safe copies: see mcsafe_install in
 * mcsafe.h) or no SQLite is linked; or the code of sqlite3_vfs_register.
 */
int mcsafe_sqlite_register(int make_default);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MCSAFE_SQLITE_H */
