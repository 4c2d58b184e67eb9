/*
 * check — `shardkv check --data-dir D [--repair]`: verifies a stopped node's
 * data offline.  For every shard it loads the newest snapshot and scans the
 * whole log (checksums, framing, sequence order) and prints one line per
 * shard and a summary.  Exit code: 0 all good (a torn tail is reported but
 * is normal after a crash), 1 corruption found (or repaired), 2 usage or
 * the directory is in use by a running node.
 *
 * --repair cuts each damaged log at its first bad record: the segment is
 * truncated there and later segments are deleted, after printing exactly
 * which files and how many bytes go.  Records after the damage are lost;
 * that is the operator's explicit choice, never the server's.  A damaged
 * snapshot cannot be repaired (the segments it replaced are gone).
 */
#ifndef SKV_CHECK_H
#define SKV_CHECK_H

/* argv[0] is "check".  Returns the process exit code. */
int check_main(int argc, char **argv);

#endif
