/*
 * The raw-SQLite peer for scripts/bench: the same kind of durable insert orgd
 * does, with no server in the way. WAL, synchronous=FULL.
 *   sqlite_baseline FILE ROWS ROWS_PER_TRANSACTION
 * prints "rows=N seconds=S rows_per_second=R".
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void check(int rc, sqlite3 *db, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s FILE ROWS ROWS_PER_TRANSACTION\n", argv[0]);
        return 2;
    }
    long rows = atol(argv[2]), per = atol(argv[3]);
    sqlite3 *db;
    check(sqlite3_open(argv[1], &db), db, "open");
    check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                           "CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created INTEGER NOT NULL) STRICT;",
                       NULL, NULL, NULL), db, "setup");
    sqlite3_stmt *insert;
    check(sqlite3_prepare_v2(db, "INSERT INTO item (name, created) VALUES (?, ?)", -1, &insert, NULL), db, "prepare");
    double start = now();
    for (long i = 0; i < rows; i += per) {
        check(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), db, "begin");
        for (long j = i; j < i + per && j < rows; j++) {
            char name[64];
            snprintf(name, sizeof name, "row %ld", j);
            sqlite3_bind_text(insert, 1, name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(insert, 2, j);
            check(sqlite3_step(insert), db, "insert");
            sqlite3_reset(insert);
        }
        check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), db, "commit");
    }
    double seconds = now() - start;
    printf("rows=%ld seconds=%.3f rows_per_second=%.0f\n", rows, seconds, rows / seconds);
    sqlite3_finalize(insert);
    sqlite3_close(db);
    return 0;
}
