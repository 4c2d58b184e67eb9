/*
 * index — AVL tree of byte strings (see index.h).  Insert and remove are
 * recursive (the depth is the tree height, < 100 for any count that fits
 * in memory); scans are iterative with an explicit stack of that height.
 */
#include "index.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define INDEX_MAX_HEIGHT 96 /* an AVL tree of height 96 holds more than 2^64 nodes */

typedef struct index_node {
    struct index_node *left, *right;
    int height;
    size_t len;
    unsigned char key[];
} index_node;

struct index_tree {
    index_node *root;
    size_t count;
};

index_tree *index_new(void) { return skv_calloc(1, sizeof(index_tree)); }

static void free_nodes(index_node *n) {
    while (n) {
        free_nodes(n->left);
        index_node *right = n->right;
        free(n);
        n = right;
    }
}

void index_free(index_tree *t) {
    if (!t) return;
    free_nodes(t->root);
    free(t);
}

size_t index_count(const index_tree *t) { return t->count; }

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen) {
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

static int height(const index_node *n) { return n ? n->height : 0; }

static void fix_height(index_node *n) {
    int l = height(n->left), r = height(n->right);
    n->height = 1 + (l > r ? l : r);
}

static index_node *rotate_right(index_node *n) {
    index_node *l = n->left;
    n->left = l->right;
    l->right = n;
    fix_height(n);
    fix_height(l);
    return l;
}

static index_node *rotate_left(index_node *n) {
    index_node *r = n->right;
    n->right = r->left;
    r->left = n;
    fix_height(n);
    fix_height(r);
    return r;
}

/* Restores the AVL balance at n after one of its subtrees changed height by one. */
static index_node *rebalance(index_node *n) {
    fix_height(n);
    int bal = height(n->left) - height(n->right);
    if (bal > 1) {
        if (height(n->left->left) < height(n->left->right)) n->left = rotate_left(n->left);
        return rotate_right(n);
    }
    if (bal < -1) {
        if (height(n->right->right) < height(n->right->left)) n->right = rotate_right(n->right);
        return rotate_left(n);
    }
    return n;
}

static index_node *insert_at(index_node *n, const void *key, size_t len, int *added) {
    if (!n) {
        index_node *x = skv_malloc(sizeof *x + len);
        x->left = x->right = NULL;
        x->height = 1;
        x->len = len;
        if (len) memcpy(x->key, key, len);
        *added = 1;
        return x;
    }
    int c = key_cmp(key, len, n->key, n->len);
    if (c == 0) return n;
    if (c < 0) n->left = insert_at(n->left, key, len, added);
    else n->right = insert_at(n->right, key, len, added);
    return *added ? rebalance(n) : n;
}

int index_insert(index_tree *t, const void *key, size_t len) {
    int added = 0;
    t->root = insert_at(t->root, key, len, &added);
    t->count += (size_t)added;
    return added;
}

/* Unlinks the smallest node of the subtree n into *min; returns the new subtree. */
static index_node *take_min(index_node *n, index_node **min) {
    if (!n->left) {
        *min = n;
        return n->right;
    }
    n->left = take_min(n->left, min);
    return rebalance(n);
}

static index_node *remove_at(index_node *n, const void *key, size_t len, int *removed) {
    if (!n) return NULL;
    int c = key_cmp(key, len, n->key, n->len);
    if (c < 0) {
        n->left = remove_at(n->left, key, len, removed);
    } else if (c > 0) {
        n->right = remove_at(n->right, key, len, removed);
    } else {
        *removed = 1;
        index_node *l = n->left, *r = n->right;
        free(n);
        if (!r) return l;
        index_node *min;
        r = take_min(r, &min);
        min->left = l;
        min->right = r;
        return rebalance(min);
    }
    return *removed ? rebalance(n) : n;
}

int index_remove(index_tree *t, const void *key, size_t len) {
    int removed = 0;
    t->root = remove_at(t->root, key, len, &removed);
    t->count -= (size_t)removed;
    return removed;
}

int index_contains(const index_tree *t, const void *key, size_t len) {
    const index_node *n = t->root;
    while (n) {
        int c = key_cmp(key, len, n->key, n->len);
        if (c == 0) return 1;
        n = c < 0 ? n->left : n->right;
    }
    return 0;
}

size_t index_scan(const index_tree *t, const void *from, size_t from_len, int after, index_visit_fn fn, void *arg) {
    const index_node *stack[INDEX_MAX_HEIGHT];
    size_t depth = 0, calls = 0;
    /* Push the path of nodes at or after `from`: each is followed, in
     * order, by its right subtree and then by the node below it on the stack. */
    for (const index_node *n = t->root; n;) {
        int c = key_cmp(n->key, n->len, from, from_len);
        if (c > 0 || (c == 0 && !after)) {
            stack[depth++] = n;
            n = n->left;
        } else {
            n = n->right;
        }
    }
    while (depth > 0) {
        const index_node *n = stack[--depth];
        calls++;
        if (fn(arg, n->key, n->len)) break;
        for (const index_node *m = n->right; m; m = m->left) stack[depth++] = m;
    }
    return calls;
}

/* ---- invariants ---------------------------------------------------------------------------- */

typedef struct check_ctx {
    const index_node *prev;
    size_t count;
    int ok;
} check_ctx;

/* Returns the height of n's subtree, checking balance, heights and order. */
static int check_node(const index_node *n, check_ctx *c, int depth) {
    if (!n || !c->ok) return 0;
    if (depth > INDEX_MAX_HEIGHT) {
        c->ok = 0;
        return 0;
    }
    int l = check_node(n->left, c, depth + 1);
    if (c->prev && key_cmp(c->prev->key, c->prev->len, n->key, n->len) >= 0) c->ok = 0;
    c->prev = n;
    c->count++;
    int r = check_node(n->right, c, depth + 1);
    int h = 1 + (l > r ? l : r);
    if (n->height != h || l - r > 1 || r - l > 1) c->ok = 0;
    return h;
}

int index_check(const index_tree *t) {
    check_ctx c = { NULL, 0, 1 };
    check_node(t->root, &c, 1);
    return c.ok && c.count == t->count;
}
