/*
 * fsync_cost — what one durable round costs on this machine's disk, the
 * figure behind issue 3's analysis (bench/README.md, "Why fsync count").
 *
 *   cc -O2 -o build/fsync_cost bench/fsync_cost.c && build/fsync_cost DIR [SECONDS]
 *
 * In DIR (on the disk under test) it appends 600 bytes to N files and then
 * makes them durable, for N = 1 and N = 8 (shardkv's default shard count),
 * two ways: one fdatasync per file (what per-shard logs do) and one
 * syncfs for all (a stand-in for a single shared log's one sync).  It
 * prints rounds per second and the process CPU per round, and the ratio
 * of the per-file way to the syncfs way measured in the same run.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* One measurement: N files, per-file fdatasync (per_file = 1) or one syncfs.
 * Sets *rounds_s and *cpu_us (CPU per round); returns 0 or -1. */
static int measure(const char *dir, int nfiles, int per_file, double seconds, double *rounds_s, double *cpu_us) {
    int fds[8];
    char buf[600];
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < nfiles; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/fsync_cost.%d", dir, i);
        fds[i] = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        if (fds[i] < 0) return perror(path), -1;
    }
    long rounds = 0;
    double t0 = now(), c0 = cpu();
    while (now() - t0 < seconds) {
        for (int i = 0; i < nfiles; i++)
            if (write(fds[i], buf, sizeof buf) != (ssize_t)sizeof buf) return perror("write"), -1;
        if (per_file) {
            for (int i = 0; i < nfiles; i++)
                if (fdatasync(fds[i]) != 0) return perror("fdatasync"), -1;
        } else if (syncfs(fds[0]) != 0) {
            return perror("syncfs"), -1;
        }
        rounds++;
    }
    double elapsed = now() - t0, used = cpu() - c0;
    for (int i = 0; i < nfiles; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/fsync_cost.%d", dir, i);
        close(fds[i]);
        unlink(path);
    }
    *rounds_s = (double)rounds / elapsed;
    *cpu_us = used / (double)rounds * 1e6;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [SECONDS]\n", argv[0]);
        return 2;
    }
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    if (seconds <= 0) seconds = 2.0;
    printf("files  sync             rounds/s   CPU us/round\n");
    for (int n = 1; n <= 8; n += 7) {
        double r[2], c[2];
        for (int per_file = 1; per_file >= 0; per_file--)
            if (measure(argv[1], n, per_file, seconds, &r[per_file], &c[per_file]) != 0) return 1;
        printf("%5d  fdatasync each  %9.0f   %12.1f\n", n, r[1], c[1]);
        printf("%5d  one syncfs      %9.0f   %12.1f\n", n, r[0], c[0]);
        printf("%5d  per-file / syncfs: %.2fx the CPU, %.2fx the rounds\n", n, c[1] / c[0], r[1] / r[0]);
    }
    return 0;
}
