/*
 * test_ring — known-answer and property tests for the placement module.
 *
 * Where the vectors come from.  A throw-away Python 3 script (standard
 * library only) reimplemented the seed's ConsistentHashing class: a dict
 * filled with ring[int(md5(f"shard_{s}#{v}").hexdigest(), 16)] = shard for
 * s in 1..N and v in 0..vnodes-1, and get_node() = owner of the first
 * sorted point >= the key's hash, else of the smallest point.  The same
 * class run over XXH3 values gave the xxh3 ring vectors; those XXH3 values
 * came from the `xxhsum -H3` command (Debian package xxhash), the reference
 * implementation's CLI.  Jump vectors come from the published
 * Lamping & Veach loop written in Python, modulo vectors from int(key) % N
 * for canonical integers and h64 % N otherwise.  Expected shards are stored
 * as digit strings, one character per key, 0-based (seed shard_k == k-1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "ring.h"

/* ---- vectors ------------------------------------------------------------ */

/* Keys "0".."199", seed md5 ring, 100 vnodes. */
static const char md5_ring3_nums[] =
    "21110110020021201012002221222120102000200210122202100102110220122021022202120022"
    "20100111111210211211021002200010012212120212202012202020222222010201200022020210"
    "2122110212222112211100222202112011222111";
static const char md5_ring8_nums[] =
    "26170375766077703064006661623723632557200213362233145467135250126521076205125057"
    "25307611113274331276567072200344546565443416204017772020227425063504400062455613"
    "6474130244756172643305457645112754226363";
/* Same, 5 shards with 7 vnodes each. */
static const char md5_ring5v7_nums[] =
    "10002044011230200224002024143233240442211324324223330122222441140432241031214301"
    "04442440313144313002300202022322122300244122014011042241404044244323101202434244"
    "2414341140422331044444112043221414244343";
/* Keys "0".."199", the same ring over xxh3. */
static const char xxh3_ring3_nums[] =
    "12100001120122101220202010022211021111202120102120120020212212011220022211102012"
    "02201121002222112110112210212222100012202110020101100211021112021221102212201111"
    "2111110001200202111101201210101122211010";
static const char xxh3_ring8_nums[] =
    "43500775160724151750234070564661724111636140604540320354412532043226426444103312"
    "04647131047672373713117710715423505012763150725101500665026132021221157716501555"
    "7345613474207675477564273210665146431067";
static const char xxh3_ring5v7_nums[] =
    "41412030113424132004200020321410311220001242000404300244423230213123400413012000"
    "04231142233121203102233332130400333214042120103031444420032034424303212301202234"
    "2112310320013030413424133322321041310033";

/* Keys "key:0".."key:199". */
static const char jump8_xxh3[] =
    "01707451271403471212616011664762343704355411261212551743525323156674127627022512"
    "26376125114113427327765706563017570643335220500520453763507002011544266125516743"
    "0143263601235774530164215550171700427551";
static const char jump8_md5[] =
    "41256273264227343374400137142661676122742712055002213273705034477235333546226537"
    "41307051405173455253241125112145206771576703465454763342153443060365473512672115"
    "4702614643117511136570050464024442001165";
static const char mod7_xxh3[] =
    "23125414162043411313360200000222066552633312243661225561521460141102414510230003"
    "04532460124531632643546616666530235322154310134032611612312313304510522445301312"
    "3046043145044342505344353445520263461102";
static const char mod7_md5[] =
    "65500565025113602145141536525266661323663305342345115160244303314101215343044352"
    "10605524215104056214254506551313131426132003310361064303112441005114331114646632"
    "4461561163616425013034222532613602031545";

/* Odd keys: ASCII words, the empty key, UTF-8 "ключ", a long key. */
typedef struct extra_vec {
    const char *key;
    uint8_t md5_ring3, md5_ring8, xxh3_ring3, xxh3_ring8;
    uint16_t jump1000_xxh3, jump4096_xxh3, jump1000_md5, jump4096_md5;
    uint8_t mod7_xxh3, mod7_md5;
} extra_vec;

static char long_key[301]; /* "x" * 300, filled in main() */

static const extra_vec extras[] = {
    { "alice",      1, 1, 2, 3, 367, 2462, 883, 2511, 5, 4 },
    { "user:42",    0, 0, 1, 1, 848,  848, 116, 2021, 4, 0 },
    { "",           0, 6, 1, 1, 241,  241, 771,  771, 4, 0 },
    { "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", 2, 3, 2, 7, 83, 2152, 877, 877, 1, 1 },
    { "key:0",      0, 0, 0, 5, 296,  296, 924, 1320, 2, 6 },
    { "store:15",   2, 4, 1, 6, 466, 3603, 763, 3620, 4, 1 },
    { "shard_1#0",  0, 0, 0, 0, 741, 2139, 558, 3681, 3, 4 },
    { NULL /* long_key */, 1, 1, 2, 2, 20, 1457, 259, 259, 5, 1 },
};

/* XXH3_64bits over lengths that take each code path (0, 1-3, 4-8, 9-16,
 * 17-128, 129-240, >240), from xxhsum -H3; MD5 as Python's decimal int. */
typedef struct hash_vec {
    char fill;          /* when not 0: the key is fill repeated len times */
    const char *key;
    size_t len;
    uint64_t xxh3;
    const char *md5_dec;
} hash_vec;

static const hash_vec hash_vecs[] = {
    { 0, "", 0, 0x2d06800538d394c2ULL, "281949768489412648962353822266799178366" },
    { 0, "a", 1, 0xe6c632b61e964e1fULL, "16955237001963240173058271559858726497" },
    { 0, "abc", 3, 0x78af5f94892f3950ULL, "191415658344158766168031473277922803570" },
    { 0, "alice", 5, 0x4da10dd61a0116b0ULL, "132283552702735894323332391932430538300" },
    { 0, "user:42", 7, 0x9fc1e605fa7174aaULL, "115450053263903933033554386876206164446" },
    { 0, "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", 8, 0x9a137c08c1e55edeULL,
      "259726384039714788407059515981389908711" },
    { 0, "shard_1#0", 9, 0x51ff5b2ba904a256ULL, "249607299871848383982239823986748066662" },
    { 0, "key:999999", 10, 0xc4a7e8fd33976193ULL, "116720958680869438327805738031379490225" },
    { 0, "0123456789abcdef", 16, 0x64439946d8fa212dULL, "85333767196036966698723792217724685509" },
    { 'x', NULL, 100, 0xc90984ffdf50ce42ULL, "232393657208218769864367756831209375666" },
    { 'y', NULL, 200, 0x78c5ae5cf7b1237eULL, "272979919649151579711424727324384468294" },
    { 'x', NULL, 300, 0xa5d1b4607dc83554ULL, "183809720682425440881678643468892024616" },
};

/* ---- helpers ------------------------------------------------------------ */

static ring *make_ring(int strategy, int hash, uint32_t shards, uint32_t vnodes) {
    ring_config cfg = { strategy, hash, shards, vnodes, 1 };
    ring *r = NULL;
    assert_int_equal(ring_new(&cfg, &r), SKV_OK);
    assert_non_null(r);
    assert_true(ring_check(r));
    return r;
}

static uint32_t shard_of(const ring *r, const char *key) {
    return ring_shard_for_key(r, key, strlen(key), NULL);
}

static const char *extra_key(const extra_vec *e) { return e->key ? e->key : long_key; }

/* Checks keys "<prefix>0".."<prefix>199" against a digit string. */
static void check_digits(const ring *r, const char *prefix, const char *expect) {
    assert_int_equal(strlen(expect), 200);
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "%s%d", prefix, i);
        uint32_t got = shard_of(r, key);
        if (got != (uint32_t)(expect[i] - '0'))
            fail_msg("key '%s': shard %u, expected %c", key, got, expect[i]);
    }
}

/* ---- tests -------------------------------------------------------------- */

static void test_names(void **state) {
    (void)state;
    assert_int_equal(ring_strategy_parse("ring"), RING_STRATEGY_RING);
    assert_int_equal(ring_strategy_parse("modulo"), RING_STRATEGY_MODULO);
    assert_int_equal(ring_strategy_parse("jump"), RING_STRATEGY_JUMP);
    assert_int_equal(ring_strategy_parse("mod"), -1);
    assert_int_equal(ring_strategy_parse(""), -1);
    assert_int_equal(ring_hash_parse("xxh3"), RING_HASH_XXH3);
    assert_int_equal(ring_hash_parse("md5"), RING_HASH_MD5);
    assert_int_equal(ring_hash_parse("sha1"), -1);
    for (int s = 0; s <= RING_STRATEGY_JUMP; s++)
        assert_int_equal(ring_strategy_parse(ring_strategy_name(s)), s);
    for (int h = 0; h <= RING_HASH_MD5; h++)
        assert_int_equal(ring_hash_parse(ring_hash_name(h)), h);
    assert_string_equal(ring_strategy_name(7), "unknown");
    assert_string_equal(ring_hash_name(-1), "unknown");
}

static void test_new_rejects_out_of_range(void **state) {
    (void)state;
    static const ring_config bad[] = {
        { RING_STRATEGY_RING, RING_HASH_XXH3, 0, 100, 0 },
        { RING_STRATEGY_RING, RING_HASH_XXH3, RING_MAX_SHARDS + 1, 100, 0 },
        { RING_STRATEGY_RING, RING_HASH_XXH3, 3, 0, 0 },
        { RING_STRATEGY_RING, RING_HASH_XXH3, 3, RING_MAX_VNODES + 1, 0 },
        { RING_STRATEGY_MODULO, RING_HASH_MD5, 3, 0, 0 },
        { -1, RING_HASH_XXH3, 3, 100, 0 },
        { RING_STRATEGY_JUMP + 1, RING_HASH_XXH3, 3, 100, 0 },
        { RING_STRATEGY_RING, -1, 3, 100, 0 },
        { RING_STRATEGY_RING, RING_HASH_MD5 + 1, 3, 100, 0 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ring *r = (ring *)&r; /* must stay untouched */
        assert_int_equal(ring_new(&bad[i], &r), SKV_EINVAL);
        assert_ptr_equal(r, (ring *)&r);
    }
    ring_free(NULL);
    assert_false(ring_check(NULL));
}

static void test_config_is_kept(void **state) {
    (void)state;
    ring_config cfg = { RING_STRATEGY_JUMP, RING_HASH_MD5, 12, 7, 42 };
    ring *r = NULL;
    assert_int_equal(ring_new(&cfg, &r), SKV_OK);
    const ring_config *got = ring_get_config(r);
    assert_int_equal(got->strategy, RING_STRATEGY_JUMP);
    assert_int_equal(got->hash, RING_HASH_MD5);
    assert_int_equal(got->shards, 12);
    assert_int_equal(got->vnodes, 7);
    assert_int_equal(got->version, 42);
    assert_int_equal(ring_vnode_count(r), 0);
    ring_free(r);
}

static void test_hash_vectors(void **state) {
    (void)state;
    ring *x = make_ring(RING_STRATEGY_MODULO, RING_HASH_XXH3, 1, 1);
    ring *m = make_ring(RING_STRATEGY_MODULO, RING_HASH_MD5, 1, 1);
    char key[301], dec[48];
    for (size_t i = 0; i < sizeof(hash_vecs) / sizeof(hash_vecs[0]); i++) {
        const hash_vec *v = &hash_vecs[i];
        if (v->fill) memset(key, v->fill, v->len);
        else memcpy(key, v->key, v->len);
        ring_point p = ring_hash_key(x, key, v->len);
        assert_int_equal(p.hi, v->xxh3);
        assert_int_equal(p.lo, 0);
        char xdec[24];
        snprintf(xdec, sizeof(xdec), "%llu", (unsigned long long)v->xxh3);
        assert_int_equal(ring_point_format(x, p, dec), strlen(xdec));
        assert_string_equal(dec, xdec);

        p = ring_hash_key(m, key, v->len);
        assert_int_equal(ring_point_format(m, p, dec), strlen(v->md5_dec));
        assert_string_equal(dec, v->md5_dec);
    }
    ring_free(x);
    ring_free(m);
}

static void test_point_format_extremes(void **state) {
    (void)state;
    ring *x = make_ring(RING_STRATEGY_JUMP, RING_HASH_XXH3, 1, 1);
    ring *m = make_ring(RING_STRATEGY_JUMP, RING_HASH_MD5, 1, 1);
    char out[48];
    ring_point zero = { 0, 0 }, top = { UINT64_MAX, UINT64_MAX }, mid = { 1, 0 };
    assert_int_equal(ring_point_format(x, zero, out), 1);
    assert_string_equal(out, "0");
    assert_int_equal(ring_point_format(x, top, out), 20);
    assert_string_equal(out, "18446744073709551615");
    assert_int_equal(ring_point_format(m, zero, out), 1);
    assert_string_equal(out, "0");
    assert_int_equal(ring_point_format(m, mid, out), 20);
    assert_string_equal(out, "18446744073709551616");
    assert_int_equal(ring_point_format(m, top, out), 39);
    assert_string_equal(out, "340282366920938463463374607431768211455");
    ring_free(x);
    ring_free(m);
}

static void test_seed_md5_ring(void **state) {
    (void)state;
    ring *r3 = make_ring(RING_STRATEGY_RING, RING_HASH_MD5, 3, 100);
    ring *r8 = make_ring(RING_STRATEGY_RING, RING_HASH_MD5, 8, 100);
    ring *r5 = make_ring(RING_STRATEGY_RING, RING_HASH_MD5, 5, 7);
    check_digits(r3, "", md5_ring3_nums);
    check_digits(r8, "", md5_ring8_nums);
    check_digits(r5, "", md5_ring5v7_nums);
    for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
        assert_int_equal(shard_of(r3, extra_key(&extras[i])), extras[i].md5_ring3);
        assert_int_equal(shard_of(r8, extra_key(&extras[i])), extras[i].md5_ring8);
    }
    ring_free(r3);
    ring_free(r8);
    ring_free(r5);
}

static void test_xxh3_ring(void **state) {
    (void)state;
    ring *r3 = make_ring(RING_STRATEGY_RING, RING_HASH_XXH3, 3, 100);
    ring *r8 = make_ring(RING_STRATEGY_RING, RING_HASH_XXH3, 8, 100);
    ring *r5 = make_ring(RING_STRATEGY_RING, RING_HASH_XXH3, 5, 7);
    check_digits(r3, "", xxh3_ring3_nums);
    check_digits(r8, "", xxh3_ring8_nums);
    check_digits(r5, "", xxh3_ring5v7_nums);
    for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
        assert_int_equal(shard_of(r3, extra_key(&extras[i])), extras[i].xxh3_ring3);
        assert_int_equal(shard_of(r8, extra_key(&extras[i])), extras[i].xxh3_ring8);
    }
    ring_free(r3);
    ring_free(r8);
    ring_free(r5);
}

static void test_vnodes_in_ring_order(void **state) {
    (void)state;
    for (int h = 0; h <= RING_HASH_MD5; h++) {
        ring *r = make_ring(RING_STRATEGY_RING, h, 3, 100);
        assert_int_equal(ring_vnode_count(r), 300);
        ring_point prev = { 0, 0 }, p, probe;
        uint32_t shard, per_shard[3] = { 0, 0, 0 };
        for (size_t i = 0; i < 300; i++) {
            ring_vnode(r, i, &p, &shard);
            assert_true(shard < 3);
            per_shard[shard]++;
            if (i > 0) assert_true(p.hi > prev.hi || (p.hi == prev.hi && p.lo > prev.lo));
            if (h == RING_HASH_XXH3) assert_int_equal(p.lo, 0);
            prev = p;
        }
        for (int s = 0; s < 3; s++) assert_int_equal(per_shard[s], 100);
        /* The label of shard_1#0 is on the ring, owned by shard 0, and a
         * key equal to a label lands on that label's own point. */
        probe = ring_hash_key(r, "shard_1#0", 9);
        int found = 0;
        for (size_t i = 0; i < 300; i++) {
            ring_vnode(r, i, &p, &shard);
            if (p.hi == probe.hi && p.lo == probe.lo) found = (shard == 0);
        }
        assert_true(found);
        assert_int_equal(shard_of(r, "shard_1#0"), 0);
        assert_int_equal(shard_of(r, "shard_3#99"), 2);
        ring_free(r);
    }
}

static void test_modulo(void **state) {
    (void)state;
    ring *x = make_ring(RING_STRATEGY_MODULO, RING_HASH_XXH3, 7, 100);
    ring *m = make_ring(RING_STRATEGY_MODULO, RING_HASH_MD5, 7, 100);
    check_digits(x, "key:", mod7_xxh3);
    check_digits(m, "key:", mod7_md5);
    for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
        assert_int_equal(shard_of(x, extra_key(&extras[i])), extras[i].mod7_xxh3);
        assert_int_equal(shard_of(m, extra_key(&extras[i])), extras[i].mod7_md5);
    }
    /* Canonical integers go to id % N, under either hash. */
    for (int i = 0; i < 200; i++) {
        char key[16];
        snprintf(key, sizeof(key), "%d", i);
        assert_int_equal(shard_of(x, key), (uint32_t)(i % 7));
        assert_int_equal(shard_of(m, key), (uint32_t)(i % 7));
    }
    assert_int_equal(shard_of(x, "18446744073709551615"), 1);  /* (2^64-1) % 7 */
    /* Not canonical: through the hash (vectors from Python). */
    assert_int_equal(shard_of(x, "007"), 4);
    assert_int_equal(shard_of(m, "007"), 2);
    assert_int_equal(shard_of(x, "18446744073709551616"), 3); /* 2^64 */
    assert_int_equal(shard_of(m, "18446744073709551616"), 0);
    assert_int_equal(shard_of(x, "-1"), 0);
    assert_int_equal(shard_of(m, "+5"), 1);
    ring_point p = ring_hash_key(x, "007", 3);
    assert_int_equal(shard_of(x, "007"), (uint32_t)(p.hi % 7));
    p = ring_hash_key(m, "007", 3);
    assert_int_equal(shard_of(m, "007"), (uint32_t)(p.hi % 7));
    ring_free(x);
    ring_free(m);

    /* The seed's example: userId 15 over 3 shards is shard 0. */
    ring *r3 = make_ring(RING_STRATEGY_MODULO, RING_HASH_XXH3, 3, 100);
    assert_int_equal(shard_of(r3, "15"), 0);
    assert_int_equal(shard_of(r3, "1"), 1);
    assert_int_equal(shard_of(r3, "2"), 2);
    assert_int_equal(shard_of(r3, "0"), 0);
    assert_int_equal(shard_of(r3, "18446744073709551615"), 0); /* (2^64-1) % 3 */
    ring_free(r3);
}

static void test_jump(void **state) {
    (void)state;
    ring *x8 = make_ring(RING_STRATEGY_JUMP, RING_HASH_XXH3, 8, 100);
    ring *m8 = make_ring(RING_STRATEGY_JUMP, RING_HASH_MD5, 8, 100);
    check_digits(x8, "key:", jump8_xxh3);
    check_digits(m8, "key:", jump8_md5);
    ring *x1000 = make_ring(RING_STRATEGY_JUMP, RING_HASH_XXH3, 1000, 100);
    ring *m1000 = make_ring(RING_STRATEGY_JUMP, RING_HASH_MD5, 1000, 100);
    ring *x4096 = make_ring(RING_STRATEGY_JUMP, RING_HASH_XXH3, 4096, 100);
    ring *m4096 = make_ring(RING_STRATEGY_JUMP, RING_HASH_MD5, 4096, 100);
    for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
        const char *k = extra_key(&extras[i]);
        assert_int_equal(shard_of(x1000, k), extras[i].jump1000_xxh3);
        assert_int_equal(shard_of(x4096, k), extras[i].jump4096_xxh3);
        assert_int_equal(shard_of(m1000, k), extras[i].jump1000_md5);
        assert_int_equal(shard_of(m4096, k), extras[i].jump4096_md5);
    }
    ring_free(x8);
    ring_free(m8);
    ring_free(x1000);
    ring_free(m1000);
    ring_free(x4096);
    ring_free(m4096);
}

static void test_point_out(void **state) {
    (void)state;
    for (int s = 0; s <= RING_STRATEGY_JUMP; s++) {
        for (int h = 0; h <= RING_HASH_MD5; h++) {
            ring *r = make_ring(s, h, 5, 50);
            ring_point want = ring_hash_key(r, "alice", 5), got = { 1, 1 };
            uint32_t a = ring_shard_for_key(r, "alice", 5, &got);
            assert_int_equal(got.hi, want.hi);
            assert_int_equal(got.lo, want.lo);
            assert_int_equal(a, ring_shard_for_key(r, "alice", 5, NULL));
            ring_free(r);
        }
    }
}

static void test_single_shard(void **state) {
    (void)state;
    for (int s = 0; s <= RING_STRATEGY_JUMP; s++) {
        for (int h = 0; h <= RING_HASH_MD5; h++) {
            ring *r = make_ring(s, h, 1, 1);
            assert_true(fabs(ring_share(r, 0) - 1.0) < 1e-12);
            assert_true(ring_share(r, 1) == 0.0);
            for (int i = 0; i < 100; i++) {
                char key[16];
                snprintf(key, sizeof(key), "k%d", i);
                assert_int_equal(shard_of(r, key), 0);
            }
            ring_free(r);
        }
    }
}

static void test_shares_sum_to_one(void **state) {
    (void)state;
    static const uint32_t shard_counts[] = { 1, 2, 3, 8, 16, 100 };
    static const uint32_t vnode_counts[] = { 1, 10, 100 };
    for (int s = 0; s <= RING_STRATEGY_JUMP; s++)
        for (int h = 0; h <= RING_HASH_MD5; h++)
            for (size_t i = 0; i < sizeof(shard_counts) / sizeof(shard_counts[0]); i++)
                for (size_t v = 0; v < sizeof(vnode_counts) / sizeof(vnode_counts[0]); v++) {
                    ring *r = make_ring(s, h, shard_counts[i], vnode_counts[v]);
                    double sum = 0;
                    for (uint32_t k = 0; k < shard_counts[i]; k++) {
                        double share = ring_share(r, k);
                        assert_true(share > 0.0 && share <= 1.0 + 1e-12);
                        sum += share;
                    }
                    if (fabs(sum - 1.0) > 1e-9)
                        fail_msg("%s/%s N=%u V=%u: shares sum to %.12f", ring_strategy_name(s),
                                 ring_hash_name(h), shard_counts[i], vnode_counts[v], sum);
                    ring_free(r);
                }
}

/* With 100 vnodes every shard owns between half and one and a half times
 * its fair share of the space, and of 10,000 keys. */
static void test_balance_with_100_vnodes(void **state) {
    (void)state;
    static const uint32_t shard_counts[] = { 3, 8, 16 };
    for (int h = 0; h <= RING_HASH_MD5; h++) {
        for (size_t i = 0; i < sizeof(shard_counts) / sizeof(shard_counts[0]); i++) {
            uint32_t n = shard_counts[i];
            ring *r = make_ring(RING_STRATEGY_RING, h, n, 100);
            uint32_t counts[16] = { 0 };
            char key[32];
            for (int k = 0; k < 10000; k++) {
                snprintf(key, sizeof(key), "key:%d", k);
                counts[shard_of(r, key)]++;
            }
            for (uint32_t s = 0; s < n; s++) {
                double share = ring_share(r, s) * n;
                double keys = counts[s] * (double)n / 10000.0;
                if (share < 0.5 || share > 1.5 || keys < 0.5 || keys > 1.5)
                    fail_msg("%s N=%u shard %u: share %.3f keys %.3f of fair",
                             ring_hash_name(h), n, s, share, keys);
            }
            ring_free(r);
        }
    }
}

/* Every strategy gives every shard some of 10,000 keys. */
static void test_every_shard_gets_keys(void **state) {
    (void)state;
    for (int s = 0; s <= RING_STRATEGY_JUMP; s++)
        for (int h = 0; h <= RING_HASH_MD5; h++)
            for (uint32_t n = 1; n <= 32; n *= 2) {
                ring *r = make_ring(s, h, n, 100);
                uint32_t counts[32] = { 0 };
                char key[32];
                for (int k = 0; k < 10000; k++) {
                    snprintf(key, sizeof(key), "user:%d", k);
                    counts[shard_of(r, key)]++;
                }
                for (uint32_t i = 0; i < n; i++) assert_true(counts[i] > 0);
                ring_free(r);
            }
}

/* Growing from N to N+1 shards moves keys only onto the new shard. */
static void check_monotonic(int strategy, int hash) {
    ring *prev = make_ring(strategy, hash, 1, 100);
    for (uint32_t n = 2; n <= 12; n++) {
        ring *next = make_ring(strategy, hash, n, 100);
        size_t moved = 0;
        char key[32];
        for (int k = 0; k < 2000; k++) {
            snprintf(key, sizeof(key), "key:%d", k);
            uint32_t a = shard_of(prev, key), b = shard_of(next, key);
            if (a != b) {
                moved++;
                if (b != n - 1)
                    fail_msg("%s/%s %u->%u: '%s' moved %u->%u", ring_strategy_name(strategy),
                             ring_hash_name(hash), n - 1, n, key, a, b);
            }
        }
        assert_true(moved > 0);
        assert_true(moved < 2000 * 2 / n); /* about 1/n of them */
        ring_free(prev);
        prev = next;
    }
    ring_free(prev);
}

static void test_monotonic_growth(void **state) {
    (void)state;
    check_monotonic(RING_STRATEGY_RING, RING_HASH_XXH3);
    check_monotonic(RING_STRATEGY_RING, RING_HASH_MD5);
    check_monotonic(RING_STRATEGY_JUMP, RING_HASH_XXH3);
    check_monotonic(RING_STRATEGY_JUMP, RING_HASH_MD5);
}

int main(void) {
    memset(long_key, 'x', 300);
    long_key[300] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_new_rejects_out_of_range),
        cmocka_unit_test(test_config_is_kept),
        cmocka_unit_test(test_hash_vectors),
        cmocka_unit_test(test_point_format_extremes),
        cmocka_unit_test(test_seed_md5_ring),
        cmocka_unit_test(test_xxh3_ring),
        cmocka_unit_test(test_vnodes_in_ring_order),
        cmocka_unit_test(test_modulo),
        cmocka_unit_test(test_jump),
        cmocka_unit_test(test_point_out),
        cmocka_unit_test(test_single_shard),
        cmocka_unit_test(test_shares_sum_to_one),
        cmocka_unit_test(test_balance_with_100_vnodes),
        cmocka_unit_test(test_every_shard_gets_keys),
        cmocka_unit_test(test_monotonic_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
