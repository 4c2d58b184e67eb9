#include "datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "err.h"
#include "io.h"
#include "log.h"

int datadir_lock(const char *dir) {
    char path[1100];
    if (io_path(path, sizeof path, dir, "LOCK") != 0) return SKV_EIO;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("cannot open %s: %s", path, strerror(errno));
        return SKV_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) pid[n] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        log_error("data directory %s is in use by another shardkv node (pid %s); stop it or use another --data-dir", dir,
                  pid[0] ? pid : "unknown");
        close(fd);
        return SKV_ESTATE;
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len)
        log_warn("could not record our pid in %s", path);
    return fd;
}

int datadir_check_meta(const char *dir, uint32_t shards, const char *placement, const char *hash, uint32_t vnodes) {
    char path[1100], tmp[1100], want[256];
    if (io_path(path, sizeof path, dir, "META") != 0 || io_path(tmp, sizeof tmp, dir, "META.tmp") != 0) return SKV_EIO;
    int n = snprintf(want, sizeof want, "shardkv-data 1\nshards %u\nplacement %s\nhash %s\nvnodes %u\n", shards,
                     placement, hash, vnodes);
    FILE *f = fopen(path, "r");
    if (f) {
        char have[256];
        size_t got = fread(have, 1, sizeof have - 1, f);
        fclose(f);
        have[got] = '\0';
        if (strcmp(have, want) == 0) return SKV_OK;
        for (char *p = have; *p; p++)
            if (*p == '\n') *p = ' ';
        log_error("data directory %s was written with a different shard layout [%s]; this node is configured with "
                  "[shards %u placement %s hash %s vnodes %u]. Start with the directory's settings (keys are placed by "
                  "them) or use another --data-dir",
                  dir, have, shards, placement, hash, vnodes);
        return SKV_ESTATE;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return SKV_EIO;
    int rc = io_write_all(&skv_io_posix, fd, want, (size_t)n);
    if (rc == 0) rc = skv_io_posix.fsync(fd);
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
    if (rc == 0) rc = io_fsync_dir(dir);
    if (rc != 0) {
        log_error("cannot write %s: %s", path, strerror(-rc));
        return SKV_EIO;
    }
    return SKV_OK;
}
