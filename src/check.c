#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.h"
#include "err.h"
#include "io.h"
#include "log.h"
#include "snap.h"
#include "wal.h"

typedef struct shard_report {
    uint64_t snap_entries, snap_base, records, last_seq;
    int snap_bad, log_bad, torn;
} shard_report;

static int count_record(void *arg, const wal_record *r) {
    (void)r;
    (void)arg;
    return 0;
}

/* Segments of dir after `path` (by name order), for --repair. */
static int later_segments(const char *dir, const char *path, char names[][300], int max) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (strncmp(e->d_name, "wal-", 4) != 0 || strstr(e->d_name, ".log") == NULL) continue;
        if (strcmp(e->d_name, base) > 0) snprintf(names[n++], 300, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

static int repair_log(const char *dir, const wal_scan_report *rep) {
    struct stat st;
    if (stat(rep->error_file, &st) != 0) return -1;
    static char later[256][300];
    int n = later_segments(dir, rep->error_file, later, 256);
    uint64_t dropped = (uint64_t)st.st_size - rep->error_offset;
    printf("  repair: truncating %s at offset %llu (dropping %llu bytes)\n", rep->error_file,
           (unsigned long long)rep->error_offset, (unsigned long long)dropped);
    if (truncate(rep->error_file, (off_t)rep->error_offset) != 0) {
        printf("  repair failed: %s\n", strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char path[1200];
        if (io_path(path, sizeof path, dir, later[i]) != 0) continue;
        printf("  repair: deleting later segment %s\n", path);
        unlink(path);
    }
    io_fsync_dir(dir);
    return 0;
}

static int check_shard(const char *dir, int repair, shard_report *out) {
    memset(out, 0, sizeof *out);
    snap_info si;
    memset(&si, 0, sizeof si);
    int rc = snap_find_latest(dir, &si);
    if (rc == 1) {
        if (snap_load(&si, count_record, NULL) != SKV_OK) {
            printf("  CORRUPT snapshot %s at offset %llu: %s (cannot be repaired: restore from a backup)\n", si.path,
                   (unsigned long long)si.error_offset, si.error);
            out->snap_bad = 1;
            return 1;
        }
        out->snap_entries = si.entries;
        out->snap_base = si.base_seq;
    }
    wal_scan_report rep;
    memset(&rep, 0, sizeof rep);
    rc = wal_scan(dir, out->snap_base, count_record, NULL, &rep);
    out->records = rep.records;
    out->last_seq = rep.last_seq;
    out->torn = rep.torn_tail;
    if (rc == SKV_EIO) {
        out->log_bad = 1;
        printf("  CORRUPT log %s at offset %llu: %s\n", rep.error_file, (unsigned long long)rep.error_offset, rep.error);
        if (repair && repair_log(dir, &rep) == 0) out->log_bad = 2;
        return 1;
    }
    if (rep.torn_tail) {
        printf("  torn tail in %s at offset %llu (an unacknowledged write cut by a crash; cut off at start)\n",
               rep.last_segment, (unsigned long long)rep.tail_offset);
        if (repair && truncate(rep.last_segment, (off_t)rep.tail_offset) == 0)
            printf("  repair: truncated %s at offset %llu\n", rep.last_segment, (unsigned long long)rep.tail_offset);
    }
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: shardkv check --data-dir DIR [--repair]\n"
               "  Verifies every snapshot and log segment of a stopped node and prints a summary.\n"
               "  --repair  cut each damaged log at its first bad record (later records are lost)\n"
               "Exit: 0 clean, 1 corruption found (or repaired), 2 usage error or directory in use.\n");
}

int check_main(int argc, char **argv) {
    const char *dir = "./data";
    int repair = 0;
    static const struct option opts[] = { { "data-dir", required_argument, NULL, 'd' },
                                          { "repair", no_argument, NULL, 'r' },
                                          { "help", no_argument, NULL, 'h' },
                                          { NULL, 0, NULL, 0 } };
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'd') dir = optarg;
        else if (ch == 'r') repair = 1;
        else if (ch == 'h') { usage(stdout); return 0; }
        else { usage(stderr); return 2; }
    }
    if (optind < argc) { usage(stderr); return 2; }
    log_init(LOG_LEVEL_WARN, LOG_FORMAT_TEXT);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "shardkv check: %s is not a directory\n", dir);
        return 2;
    }
    int lock = datadir_lock(dir);
    if (lock < 0) return 2;
    char meta[1100];
    if (io_path(meta, sizeof meta, dir, "META") == 0) {
        FILE *f = fopen(meta, "r");
        if (f) {
            char buf[256];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = '\0';
            fclose(f);
            for (char *p = buf; *p; p++)
                if (*p == '\n') *p = ' ';
            printf("data directory %s: %s\n", dir, buf);
        } else {
            printf("data directory %s: no META file\n", dir);
        }
    }
    int bad = 0, shards = 0;
    uint64_t total_records = 0, total_entries = 0;
    for (unsigned id = 0;; id++) {
        char name[32], path[1100];
        snprintf(name, sizeof name, "shard-%u", id);
        if (io_path(path, sizeof path, dir, name) != 0 || stat(path, &st) != 0) break;
        shard_report r;
        int rc = check_shard(path, repair, &r);
        printf("shard %-4u %s  snapshot: %llu entries @ seq %llu  log: %llu records, last seq %llu%s\n", id,
               rc ? (r.log_bad == 2 ? "REPAIRED" : "CORRUPT ") : "ok      ", (unsigned long long)r.snap_entries,
               (unsigned long long)r.snap_base, (unsigned long long)r.records, (unsigned long long)r.last_seq,
               r.torn ? "  (torn tail)" : "");
        bad += rc;
        shards++;
        total_records += r.records;
        total_entries += r.snap_entries;
    }
    printf("summary: %d shards, %llu snapshot entries, %llu log records, %d damaged%s\n", shards,
           (unsigned long long)total_entries, (unsigned long long)total_records, bad,
           bad && !repair ? " (run again with --repair to cut damaged logs; records after the damage are lost)" : "");
    close(lock);
    return bad ? 1 : 0;
}
