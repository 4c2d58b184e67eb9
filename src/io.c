#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static ssize_t posix_write(int fd, const void *buf, size_t len) {
    ssize_t n = write(fd, buf, len);
    return n < 0 ? -errno : n;
}
static int posix_fdatasync(int fd) { return fdatasync(fd) == 0 ? 0 : -errno; }
static int posix_fsync(int fd) { return fsync(fd) == 0 ? 0 : -errno; }
static int posix_ftruncate(int fd, off_t len) { return ftruncate(fd, len) == 0 ? 0 : -errno; }

const skv_io skv_io_posix = { posix_write, posix_fdatasync, posix_fsync, posix_ftruncate };

int io_write_all(const skv_io *io, int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = io->write(fd, p, len);
        if (n == -EINTR) continue;
        if (n < 0) return (int)n;
        if (n == 0) return -EIO; /* a regular file never writes 0 bytes of a non-empty buffer */
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int io_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int io_path(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int io_mkdir(const char *dir) {
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) return 0;
    return -errno;
}
