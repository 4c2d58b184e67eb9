/*
 * ringstat — the `shardkv ring` subcommand: measures placement quality.
 *
 * For a shard count, strategy, hash and vnode count it places a million
 * keys (key:0 .. key:999999 by default; --keys N) and prints the load
 * balance (max/mean, min/mean, stddev relative to the mean) and the fraction
 * of keys that move when one shard is added (N -> N+1) and removed
 * (N -> N-1, the last shard), next to the ideal 1/(N+1) and 1/N.
 * --json prints the same figures as one JSON object.
 */
#ifndef SKV_RINGSTAT_H
#define SKV_RINGSTAT_H

/* argv[0] is "ring".  Returns the process exit code (0 ok, 2 usage error). */
int ringstat_main(int argc, char **argv);

#endif
