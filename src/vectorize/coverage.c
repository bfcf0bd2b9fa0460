/*
 * coverage.c — simplification of all outlines of a layer at once, keeping
 * their topology.
 *
 * Simplifying each polygon alone moves a corner two polygons touch at, or
 * an edge two classes share, differently on each side: neighbours overlap
 * and holes leave their shells. Here the rings are first cut into edges at
 * nodes, the pixel corners where three or four outline segments meet
 * (polygons touching at a corner, three regions meeting); an edge that two
 * polygons share is stored once, so both get the same simplified edge.
 * GEOS's TopologyPreservingSimplifier simplifies all edges together: nodes
 * stay, an edge may not cross another. That is not enough on its own (two
 * edges between the same nodes may collapse onto one segment, an edge may
 * turn past another at a node, a section may jump over a small outline
 * such as a nunatak), and the edges go to GEOS in batches of rows to bound
 * its memory, so the result is then checked exactly, in integer pixel
 * coordinates:
 *   1. no two segments meet except at an end point they share;
 *   2. around every node the edges keep their cyclic order;
 *   3. every face of the outline graph keeps its orientation;
 *   4. no simplified section sweeps over a point of another connected part
 *      of the graph (which would move that part into or out of a polygon);
 *   5. every polygon with a simplified edge is valid (GEOS, through OGR).
 * A section that fails gets back the original vertex furthest from its
 * chord (from the 9th round on, all of them; check 3 and 5 restore whole
 * edges), and the checks run again until all pass. Every round adds
 * vertices and the original outlines pass every check, so this ends.
 * 1-4 make the simplified graph the same plane graph as the original (same
 * edges, same order at the nodes, same faces, same nesting), so polygons
 * stay valid and disjoint, holes stay in their shells, shared edges stay
 * shared, and no polygon collapses: every node is kept and a ring of one
 * edge keeps at least 3 corners.
 *
 * Memory: the outlines as pixel corners (8 bytes a vertex, plus a hash of
 * the corners while the graph is built), and GEOS one batch at a time.
 */
#include "coverage.h"

#include <cpl_error.h>
#include <gdal.h>
#include <geos_c.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t gseg__simplify_batch = (size_t)1 << 17;

/* Rounds of checks that restore one vertex per failing section. */
#define SPLIT_ROUNDS 8

/* Pixel coordinates up to 2^30 keep every product below in int64. */
#define MAX_COORD (1 << 30)

__extension__ typedef __int128 i128;

typedef struct ipt {
    int32_t x, y;
} ipt;

typedef struct edge {
    size_t off;      /* first vertex in c->v */
    uint32_t n;      /* vertices; a closed edge repeats its first one last */
    int32_t node[2]; /* start and end node, -1 for a closed edge */
    int32_t comp;    /* connected part of the graph */
    int uses;        /* rings through it: 1 or 2 */
} edge;

typedef struct node {
    ipt p;
    int n, degree;
    uint32_t end[4]; /* edge*2 + (0 start, 1 end), sorted by direction */
} node;

typedef struct rep {
    ipt p;
    int32_t comp;
} rep;

struct gseg__cov {
    double gt[6], inv[6];
    int built;

    /* Input rings in pixel corners, until the graph is built. */
    ipt *rv;
    size_t nrv, caprv;
    size_t *ring_off; /* ring r: rv[ring_off[r] .. ring_off[r + 1]) */
    size_t nring, capring;
    size_t *poly_ring; /* polygon i: rings [poly_ring[i], poly_ring[i + 1]) */
    int *tag;
    size_t npoly, cappoly;

    /* The graph. kept[] marks the vertices the simplified edges keep. */
    ipt *v;
    unsigned char *kept;
    size_t nv, capv;
    edge *e;
    size_t ne, cape;
    node *nd;
    size_t nnd;
    uint32_t *ref; /* ring edges in order: edge*2 + (1 if traversed backwards) */
    size_t nref, capref;
    size_t *ring_ref; /* ring r: ref[ring_ref[r] .. ring_ref[r + 1]) */
    int32_t *walk;    /* face walk of each half-edge (edge*2 + backwards) */
    signed char *walk_sign; /* orientation of each walk, original outlines */
    size_t nwalk;
    rep *rep; /* a vertex of each connected part that every state keeps */
    size_t ncomp;
    int whole; /* failing sections get all their vertices back, not one */

    /* Scratch. */
    double *x, *y;
    size_t capxy;
    ipt *s;
    int32_t *snode;
    size_t caps;
    char geos_msg[256];
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

/* The block p grown to hold need items of size bytes (old block kept on
 * failure: NULL, error set). */
static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return p;
    size_t m = *cap ? *cap : 64;
    while (m < need) m *= 2;
    void *q = m <= SIZE_MAX / size ? realloc(p, m * size) : NULL;
    if (!q) {
        gseg__err(GSEG_ERR_NOMEM, "out of memory for the outlines (%zu items)", need);
        return NULL;
    }
    *cap = m;
    return q;
}

static int same(ipt a, ipt b) { return a.x == b.x && a.y == b.y; }

static int64_t orient(ipt a, ipt b, ipt p)
{
    return (int64_t)(b.x - a.x) * (p.y - a.y) - (int64_t)(b.y - a.y) * (p.x - a.x);
}

static int sgn(int64_t v) { return (v > 0) - (v < 0); }

static int64_t cross(ipt a, ipt b) { return (int64_t)a.x * b.y - (int64_t)a.y * b.x; }

static ipt sub(ipt a, ipt b) { return (ipt){a.x - b.x, a.y - b.y}; }

/* Direction bit of an axis-parallel step: E W S N (pixel axes). */
static int dir_bit(ipt d)
{
    return d.x > 0 ? 1 : d.x < 0 ? 2 : d.y > 0 ? 4 : 8;
}

static int popcount4(unsigned d) { return (d & 1) + (d >> 1 & 1) + (d >> 2 & 1) + (d >> 3 & 1); }

static int dir_index(ipt d)
{
    return d.x > 0 ? 0 : d.x < 0 ? 1 : d.y > 0 ? 2 : 3;
}

static ipt unit(ipt d)
{
    return (ipt){(d.x > 0) - (d.x < 0), (d.y > 0) - (d.y < 0)};
}

/* Counter-clockwise order of directions from +x (in pixel axes). */
static int upper_half(ipt d) { return d.y > 0 || (d.y == 0 && d.x > 0); }

static int angle_less(ipt a, ipt b)
{
    int ha = upper_half(a), hb = upper_half(b);
    if (ha != hb) return ha;
    return cross(a, b) > 0;
}

static void to_crs(const gseg__cov *c, ipt p, double *x, double *y)
{
    *x = c->gt[0] + p.x * c->gt[1] + p.y * c->gt[2];
    *y = c->gt[3] + p.x * c->gt[4] + p.y * c->gt[5];
}

static int to_pixel(const gseg__cov *c, double x, double y, ipt *p)
{
    double px = c->inv[0] + x * c->inv[1] + y * c->inv[2];
    double py = c->inv[3] + x * c->inv[4] + y * c->inv[5];
    double rx = floor(px + 0.5), ry = floor(py + 0.5);
    if (!(fabs(px - rx) < 1e-3 && fabs(py - ry) < 1e-3 && rx >= 0 && ry >= 0 &&
          rx <= MAX_COORD && ry <= MAX_COORD))
        return 0;
    *p = (ipt){(int32_t)rx, (int32_t)ry};
    return 1;
}

static gseg_status bad_outline(const char *what)
{
    return gseg__err(GSEG_ERR_INTERNAL,
                     "simplification: unexpected outline from GDALPolygonize (%s)", what);
}

/* ------------------------------------------------------------------------ */
/* Input                                                                    */

gseg_status gseg__cov_new(const double gt[6], gseg__cov **out)
{
    *out = NULL;
    gseg__cov *c = gseg__calloc(1, sizeof *c);
    if (!c) return GSEG_ERR_NOMEM;
    memcpy(c->gt, gt, sizeof c->gt);
    if (!GDALInvGeoTransform(c->gt, c->inv)) {
        free(c);
        return gseg__err(GSEG_ERR_FORMAT, "simplification: the geotransform is not invertible");
    }
    *out = c;
    return GSEG_OK;
}

void gseg__cov_free(gseg__cov *c)
{
    if (!c) return;
    free(c->rv);
    free(c->ring_off);
    free(c->poly_ring);
    free(c->tag);
    free(c->v);
    free(c->kept);
    free(c->e);
    free(c->nd);
    free(c->ref);
    free(c->ring_ref);
    free(c->walk);
    free(c->walk_sign);
    free(c->rep);
    free(c->x);
    free(c->y);
    free(c->s);
    free(c->snode);
    free(c);
}

static int reserve_xy(gseg__cov *c, size_t n)
{
    size_t cap = c->capxy;
    double *x = grow(c->x, &cap, n, sizeof *x);
    if (x) c->x = x;
    size_t cap2 = c->capxy;
    double *y = x ? grow(c->y, &cap2, n, sizeof *y) : NULL;
    if (y) c->y = y;
    if (!x || !y) return 0;
    c->capxy = cap < cap2 ? cap : cap2;
    return 1;
}

/* b strictly between a and c on one axis-parallel line. */
static int between(ipt a, ipt b, ipt c)
{
    if (a.x == b.x && b.x == c.x) return (a.y < b.y && b.y < c.y) || (a.y > b.y && b.y > c.y);
    if (a.y == b.y && b.y == c.y) return (a.x < b.x && b.x < c.x) || (a.x > b.x && b.x > c.x);
    return 0;
}

/* An outline of pixel edges alternates horizontal and vertical steps. */
static int is_pixel_ring(const ipt *r, size_t k)
{
    if (k < 4 || k % 2) return 0;
    for (size_t i = 0; i < k; i++) {
        ipt a = r[i], b = r[(i + 1) % k], d = r[(i + 2) % k];
        int h1 = a.y == b.y && a.x != b.x, v1 = a.x == b.x && a.y != b.y;
        int h2 = b.y == d.y && b.x != d.x;
        if (!(h1 || v1) || h1 == h2) return 0;
    }
    return 1;
}

/* Appends one ring as pixel corners without repeated or collinear ones. */
static gseg_status add_ring(gseg__cov *c, OGRGeometryH ring)
{
    int n = OGR_G_GetPointCount(ring);
    if (n < 4) return bad_outline("a ring of fewer than 4 points");
    if (!reserve_xy(c, (size_t)n)) return GSEG_ERR_NOMEM;
    ipt *rv = grow(c->rv, &c->caprv, c->nrv + (size_t)n, sizeof *rv);
    size_t *ro = rv ? grow(c->ring_off, &c->capring, c->nring + 2, sizeof *ro) : NULL;
    if (rv) c->rv = rv;
    if (ro) c->ring_off = ro;
    if (!rv || !ro) return GSEG_ERR_NOMEM;
    OGR_G_GetPoints(ring, c->x, sizeof(double), c->y, sizeof(double), NULL, 0);

    ipt *r = c->rv + c->nrv;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        ipt p;
        if (!to_pixel(c, c->x[i], c->y[i], &p)) return bad_outline("a vertex off the pixel grid");
        if (k && same(r[k - 1], p)) continue;
        r[k++] = p;
        while (k >= 3 && between(r[k - 3], r[k - 2], r[k - 1])) {
            r[k - 2] = r[k - 1];
            k--;
        }
    }
    if (k > 1 && same(r[k - 1], r[0])) k--;
    size_t s = 0; /* collinear corners where the ring closes */
    while (k - s >= 3) {
        if (between(r[k - 2], r[k - 1], r[s])) k--;
        else if (between(r[k - 1], r[s], r[s + 1])) s++;
        else break;
    }
    memmove(r, r + s, (k - s) * sizeof *r);
    k -= s;
    if (!is_pixel_ring(r, k)) return bad_outline("a ring not along pixel edges");
    if (c->nring == 0) c->ring_off[0] = 0;
    c->nrv += k;
    c->ring_off[++c->nring] = c->nrv;
    return GSEG_OK;
}

gseg_status gseg__cov_add(gseg__cov *c, OGRGeometryH g, int tag)
{
    if (c->built) return gseg__err(GSEG_ERR_INTERNAL, "simplification: polygon added too late");
    size_t cap = c->cappoly;
    size_t *pr = grow(c->poly_ring, &cap, c->npoly + 2, sizeof *pr);
    if (pr) c->poly_ring = pr;
    size_t cap2 = c->cappoly;
    int *t = pr ? grow(c->tag, &cap2, c->npoly + 2, sizeof *t) : NULL;
    if (t) c->tag = t;
    if (!pr || !t) return GSEG_ERR_NOMEM;
    c->cappoly = cap < cap2 ? cap : cap2;
    if (c->npoly == 0) c->poly_ring[0] = c->nring;
    int nr = OGR_G_GetGeometryCount(g);
    if (nr < 1) return bad_outline("a polygon without rings");
    for (int r = 0; r < nr; r++) {
        gseg_status st = add_ring(c, OGR_G_GetGeometryRef(g, r));
        if (st) return st;
    }
    c->tag[c->npoly++] = tag;
    c->poly_ring[c->npoly] = c->nring;
    return GSEG_OK;
}

size_t gseg__cov_count(const gseg__cov *c) { return c->npoly; }

/* ------------------------------------------------------------------------ */
/* Pixel corners on the outlines (open addressing)                          */

typedef struct pslot {
    uint64_t key;
    int32_t id;   /* a node's id; else the closed edge stored from here, or -1 */
    uint8_t dirs; /* outline steps leaving the corner; 0 = free slot */
} pslot;

typedef struct pmap {
    pslot *s;
    size_t mask;
} pmap;

static uint64_t pkey(ipt p) { return (uint64_t)(uint32_t)p.x << 32 | (uint32_t)p.y; }

static size_t phash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (size_t)k;
}

/* The slot of p; with insert, a new one (dirs 0: the caller sets them). */
static pslot *pmap_find(const pmap *m, ipt p, int insert)
{
    uint64_t k = pkey(p);
    for (size_t i = phash(k) & m->mask;; i = (i + 1) & m->mask) {
        pslot *s = &m->s[i];
        if (s->dirs && s->key == k) return s;
        if (!s->dirs) {
            if (!insert) return NULL;
            s->key = k;
            s->id = -1;
            return s;
        }
    }
}

static ipt pslot_point(const pslot *s)
{
    return (ipt){(int32_t)(s->key >> 32), (int32_t)(s->key & 0xffffffffu)};
}

/* The steps leaving every corner, including corners that other rings
 * pass straight through: a corner with three or four is a node. */
static void mark_corners(gseg__cov *c, pmap *m)
{
    for (size_t r = 0; r < c->nring; r++) {
        const ipt *w = c->rv + c->ring_off[r];
        size_t k = c->ring_off[r + 1] - c->ring_off[r];
        for (size_t i = 0; i < k; i++) {
            ipt p = w[i], prev = w[(i + k - 1) % k], next = w[(i + 1) % k];
            pslot *s = pmap_find(m, p, 1);
            s->dirs |= (uint8_t)(dir_bit(sub(prev, p)) | dir_bit(sub(next, p)));
        }
    }
    for (size_t r = 0; r < c->nring; r++) {
        const ipt *w = c->rv + c->ring_off[r];
        size_t k = c->ring_off[r + 1] - c->ring_off[r];
        for (size_t i = 0; i < k; i++) {
            ipt a = w[i], b = w[(i + 1) % k], u = unit(sub(b, a));
            uint8_t bits = (uint8_t)(dir_bit(sub(a, b)) | dir_bit(u));
            for (ipt q = {a.x + u.x, a.y + u.y}; !same(q, b); q.x += u.x, q.y += u.y) {
                pslot *s = pmap_find(m, q, 0);
                if (s) s->dirs |= bits;
            }
        }
    }
}

static gseg_status number_nodes(gseg__cov *c, pmap *m)
{
    size_t n = 0;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->s[i].dirs && popcount4(m->s[i].dirs) >= 3) n++;
    if (n > INT32_MAX / 4) return gseg__err(GSEG_ERR_LIMIT, "simplification: too many nodes");
    c->nd = gseg__calloc(n ? n : 1, sizeof *c->nd);
    if (!c->nd) return GSEG_ERR_NOMEM;
    for (size_t i = 0; i <= m->mask; i++) {
        pslot *s = &m->s[i];
        if (!s->dirs || popcount4(s->dirs) < 3) continue;
        s->id = (int32_t)c->nnd;
        c->nd[c->nnd].p = pslot_point(s);
        c->nd[c->nnd++].degree = popcount4(s->dirs);
    }
    return GSEG_OK;
}

/* ------------------------------------------------------------------------ */
/* Rings → edges                                                            */

static gseg_status push_ref(gseg__cov *c, uint32_t r)
{
    uint32_t *p = grow(c->ref, &c->capref, c->nref + 1, sizeof *p);
    if (!p) return GSEG_ERR_NOMEM;
    c->ref = p;
    c->ref[c->nref++] = r;
    return GSEG_OK;
}

/* A new edge with the n vertices w, backwards if rev. */
static gseg_status new_edge(gseg__cov *c, const ipt *w, size_t n, int rev, int32_t n0,
                            int32_t n1)
{
    if (c->ne >= INT32_MAX / 2 || n > UINT32_MAX)
        return gseg__err(GSEG_ERR_LIMIT, "simplification: too many outline edges");
    edge *e = grow(c->e, &c->cape, c->ne + 1, sizeof *e);
    if (!e) return GSEG_ERR_NOMEM;
    c->e = e;
    size_t cap = c->capv;
    ipt *v = grow(c->v, &cap, c->nv + n, sizeof *v);
    if (!v) return GSEG_ERR_NOMEM;
    c->v = v;
    size_t cap2 = c->capv;
    unsigned char *k = grow(c->kept, &cap2, c->nv + n, 1);
    if (!k) return GSEG_ERR_NOMEM;
    c->kept = k;
    c->capv = cap < cap2 ? cap : cap2;
    for (size_t i = 0; i < n; i++) c->v[c->nv + i] = w[rev ? n - 1 - i : i];
    e = &c->e[c->ne];
    *e = (edge){.off = c->nv, .n = (uint32_t)n, .node = {rev ? n1 : n0, rev ? n0 : n1},
                .comp = -1, .uses = 1};
    c->nv += n;
    for (int end = 0; end < 2 && e->node[0] >= 0; end++) {
        node *d = &c->nd[e->node[end]];
        if (d->n >= 4) return bad_outline("more than four edges at a corner");
        d->end[d->n++] = (uint32_t)c->ne * 2 + (uint32_t)end;
    }
    c->ne++;
    return GSEG_OK;
}

/* The second ring through edge id: its vertices must be the edge's. */
static gseg_status reuse_edge(gseg__cov *c, int32_t id, const ipt *w, size_t n, int rev)
{
    edge *e = &c->e[id];
    if (e->uses >= 2 || e->n != n) return bad_outline("an edge of more than two polygons");
    const ipt *v = c->v + e->off;
    for (size_t i = 0; i < n; i++)
        if (!same(v[i], w[rev ? n - 1 - i : i])) return bad_outline("edges that differ");
    e->uses++;
    return GSEG_OK;
}

/* Room for n points in the scratch c->s and c->snode. */
static int reserve_s(gseg__cov *c, size_t n)
{
    size_t cap = c->caps;
    ipt *s = grow(c->s, &cap, n, sizeof *s);
    if (s) c->s = s;
    size_t cap2 = c->caps;
    int32_t *sn = s ? grow(c->snode, &cap2, n, sizeof *sn) : NULL;
    if (sn) c->snode = sn;
    if (!s || !sn) return 0;
    c->caps = cap < cap2 ? cap : cap2;
    return 1;
}

/* The chain w[0..n-1] between two nodes. An edge is known by the node and
 * first step at each end; it is stored from the smaller of the two. */
static gseg_status open_chain(gseg__cov *c, int32_t *slot, const ipt *w, size_t n, int32_t n0,
                              int32_t n1)
{
    size_t sa = (size_t)n0 * 4 + (size_t)dir_index(sub(w[1], w[0]));
    size_t sb = (size_t)n1 * 4 + (size_t)dir_index(sub(w[n - 2], w[n - 1]));
    int rev = sb < sa;
    int32_t id = slot[rev ? sb : sa];
    gseg_status st;
    if (id >= 0) {
        st = reuse_edge(c, id, w, n, rev);
    } else {
        id = (int32_t)c->ne;
        st = new_edge(c, w, n, rev, n0, n1);
        slot[sa] = slot[sb] = id;
    }
    return st ? st : push_ref(c, (uint32_t)id * 2 + (uint32_t)rev);
}

static int pt_less(ipt a, ipt b) { return a.y < b.y || (a.y == b.y && a.x < b.x); }

/* A ring without nodes is one closed edge, stored from its smallest corner
 * towards the smaller neighbour, so both rings through it agree. */
static gseg_status closed_chain(gseg__cov *c, pmap *m, const ipt *w, size_t k)
{
    size_t mi = 0;
    for (size_t i = 1; i < k; i++)
        if (pt_less(w[i], w[mi])) mi = i;
    int fwd = pt_less(w[(mi + 1) % k], w[(mi + k - 1) % k]);
    if (!reserve_s(c, k + 1)) return GSEG_ERR_NOMEM;
    ipt *s = c->s;
    for (size_t i = 0; i <= k; i++) s[i] = w[fwd ? (mi + i) % k : (mi + k - i % k) % k];
    pslot *ps = pmap_find(m, w[mi], 0); /* not a node: its id is free */
    gseg_status st;
    int32_t id = ps->id;
    if (id >= 0) {
        st = reuse_edge(c, id, s, k + 1, 0);
    } else {
        ps->id = id = (int32_t)c->ne;
        st = new_edge(c, s, k + 1, 0, -1, -1);
    }
    return st ? st : push_ref(c, (uint32_t)id * 2 + (uint32_t)!fwd);
}

/* Ring r with the nodes other rings pass through inserted: c->s, nodes in
 * c->snode (-1 elsewhere); returns the count, 0 if out of memory. */
static size_t expand_ring(gseg__cov *c, pmap *m, size_t r)
{
    const ipt *w = c->rv + c->ring_off[r];
    size_t k = c->ring_off[r + 1] - c->ring_off[r], n = 0;
    for (size_t i = 0; i < k; i++) {
        ipt a = w[i], b = w[(i + 1) % k], u = unit(sub(b, a));
        size_t len = (size_t)abs(b.x - a.x) + (size_t)abs(b.y - a.y);
        if (!reserve_s(c, n + len + 1)) return 0;
        pslot *ps = pmap_find(m, a, 0);
        c->s[n] = a;
        c->snode[n++] = popcount4(ps->dirs) >= 3 ? ps->id : -1;
        for (ipt q = {a.x + u.x, a.y + u.y}; !same(q, b); q.x += u.x, q.y += u.y) {
            ps = pmap_find(m, q, 0);
            if (ps && popcount4(ps->dirs) >= 3) {
                c->s[n] = q;
                c->snode[n++] = ps->id;
            }
        }
    }
    return n;
}

/* Ring r as edge references, cut at its nodes. */
static gseg_status cut_ring(gseg__cov *c, pmap *m, int32_t *slot, size_t r)
{
    size_t n = expand_ring(c, m, r);
    if (!n) return GSEG_ERR_NOMEM;
    size_t first = 0;
    while (first < n && c->snode[first] < 0) first++;
    if (first == n) return closed_chain(c, m, c->rv + c->ring_off[r], n);
    /* Rotate so the ring starts and ends at its first node. */
    ipt *w = gseg__malloc(n + 1, sizeof *w);
    int32_t *wn = w ? gseg__malloc(n + 1, sizeof *wn) : NULL;
    if (!w || !wn) {
        free(w);
        return GSEG_ERR_NOMEM;
    }
    for (size_t i = 0; i <= n; i++) {
        w[i] = c->s[(first + i) % n];
        wn[i] = c->snode[(first + i) % n];
    }
    gseg_status st = GSEG_OK;
    for (size_t a = 0, b; !st && a < n; a = b) {
        for (b = a + 1; wn[b] < 0; b++) {}
        st = open_chain(c, slot, w + a, b - a + 1, wn[a], wn[b]);
    }
    free(w);
    free(wn);
    return st;
}

/* The direction in which edge end `code` leaves its node: towards the
 * next original vertex, or the next kept one. */
static ipt end_dir(const gseg__cov *c, uint32_t code, int original)
{
    const edge *e = &c->e[code >> 1];
    const ipt *v = c->v + e->off;
    const unsigned char *k = c->kept + e->off;
    size_t i;
    if (!(code & 1)) {
        for (i = 1; !original && !k[i]; i++) {}
        return sub(v[i], v[0]);
    }
    for (i = e->n - 2; !original && !k[i]; i--) {}
    return sub(v[i], v[e->n - 1]);
}

static gseg_status sort_ends(gseg__cov *c)
{
    for (size_t i = 0; i < c->nnd; i++) {
        node *d = &c->nd[i];
        if (d->n != d->degree) return bad_outline("a node whose edges do not match");
        for (int a = 1; a < d->n; a++)
            for (int b = a;
                 b > 0 && angle_less(end_dir(c, d->end[b], 1), end_dir(c, d->end[b - 1], 1)); b--) {
                uint32_t t = d->end[b];
                d->end[b] = d->end[b - 1];
                d->end[b - 1] = t;
            }
    }
    return GSEG_OK;
}

static int32_t uf_find(int32_t *p, int32_t i)
{
    while (p[i] != i) i = p[i] = p[p[i]];
    return i;
}

/* Connected parts of the graph and a point of each that no
 * simplification removes: a node, or the first vertex of a closed edge. */
static gseg_status components(gseg__cov *c)
{
    int32_t *p = gseg__malloc(c->nnd + 1, sizeof *p);
    int32_t *id = p ? gseg__malloc(c->nnd + 1, sizeof *id) : NULL;
    c->rep = id ? gseg__malloc(c->nnd + c->ne + 1, sizeof *c->rep) : NULL;
    if (!c->rep) {
        free(p);
        free(id);
        return GSEG_ERR_NOMEM;
    }
    for (size_t i = 0; i < c->nnd; i++) p[i] = (int32_t)i, id[i] = -1;
    for (size_t i = 0; i < c->ne; i++)
        if (c->e[i].node[0] >= 0)
            p[uf_find(p, c->e[i].node[0])] = uf_find(p, c->e[i].node[1]);
    for (size_t i = 0; i < c->nnd; i++) {
        int32_t r = uf_find(p, (int32_t)i);
        if (id[r] < 0) {
            id[r] = (int32_t)c->ncomp;
            c->rep[c->ncomp++] = (rep){c->nd[r].p, id[r]};
        }
    }
    for (size_t i = 0; i < c->ne; i++) {
        edge *e = &c->e[i];
        if (e->node[0] >= 0) {
            e->comp = id[uf_find(p, e->node[0])];
        } else {
            e->comp = (int32_t)c->ncomp;
            c->rep[c->ncomp] = (rep){c->v[e->off], e->comp};
            c->ncomp++;
        }
    }
    free(p);
    free(id);
    return GSEG_OK;
}

/* Twice the signed area swept from the origin by edge e forwards, over
 * the vertices it keeps (all if original). */
static i128 edge_area(const gseg__cov *c, const edge *e, int original)
{
    const ipt *v = c->v + e->off;
    const unsigned char *k = c->kept + e->off;
    i128 a = 0;
    for (size_t i = 1, prev = 0; i < e->n; i++) {
        if (!original && !k[i]) continue;
        a += (i128)v[prev].x * v[i].y - (i128)v[i].x * v[prev].y;
        prev = i;
    }
    return a;
}

/* The next half-edge around the same face: at the node h arrives at, the
 * edge next clockwise from h's end (the original rotation, which check 2
 * keeps). An end code is also the half-edge that leaves from that end. */
static uint32_t next_half(const gseg__cov *c, uint32_t h)
{
    const edge *e = &c->e[h >> 1];
    if (e->node[0] < 0) return h;
    uint32_t at = (h >> 1) * 2 + !(h & 1); /* the end it arrives at */
    const node *d = &c->nd[e->node[at & 1]];
    int i = 0;
    while (d->end[i] != at) i++;
    return d->end[(i + d->n - 1) % d->n];
}

/* The face walks of the graph and their original orientations. */
static gseg_status face_walks(gseg__cov *c)
{
    size_t nh = c->ne * 2;
    c->walk = gseg__malloc(nh + 1, sizeof *c->walk);
    i128 *area0 = c->walk ? gseg__malloc(c->ne + 1, sizeof *area0) : NULL;
    i128 *wa = area0 ? gseg__calloc(nh + 1, sizeof *wa) : NULL;
    if (!wa) {
        free(area0);
        return GSEG_ERR_NOMEM;
    }
    for (size_t i = 0; i < c->ne; i++) area0[i] = edge_area(c, &c->e[i], 1);
    for (size_t h = 0; h < nh; h++) c->walk[h] = -1;
    for (size_t h0 = 0; h0 < nh; h0++) {
        if (c->walk[h0] >= 0) continue;
        uint32_t h = (uint32_t)h0;
        do {
            c->walk[h] = (int32_t)c->nwalk;
            wa[c->nwalk] += h & 1 ? -area0[h >> 1] : area0[h >> 1];
            h = next_half(c, h);
        } while (h != h0);
        c->nwalk++;
    }
    c->walk_sign = gseg__malloc(c->nwalk + 1, 1);
    if (c->walk_sign)
        for (size_t w = 0; w < c->nwalk; w++)
            c->walk_sign[w] = (signed char)((wa[w] > 0) - (wa[w] < 0));
    free(area0);
    free(wa);
    return c->walk_sign ? GSEG_OK : GSEG_ERR_NOMEM;
}

static gseg_status build(gseg__cov *c)
{
    c->built = 1;
    pmap m = {0};
    size_t cap = 16;
    while (cap < c->nrv + c->nrv / 3) cap *= 2; /* load <= 3/4 */
    m.s = gseg__calloc(cap, sizeof *m.s);
    if (!m.s) return GSEG_ERR_NOMEM;
    m.mask = cap - 1;
    mark_corners(c, &m);
    gseg_status st = number_nodes(c, &m);
    int32_t *slot = st ? NULL : gseg__malloc(c->nnd * 4 + 1, sizeof *slot);
    if (!st && !slot) st = GSEG_ERR_NOMEM;
    if (!st) {
        for (size_t i = 0; i < c->nnd * 4; i++) slot[i] = -1;
        c->ring_ref = gseg__malloc(c->nring + 1, sizeof *c->ring_ref);
        if (!c->ring_ref) st = GSEG_ERR_NOMEM;
    }
    for (size_t r = 0; !st && r < c->nring; r++) {
        c->ring_ref[r] = c->nref;
        st = cut_ring(c, &m, slot, r);
    }
    if (!st) c->ring_ref[c->nring] = c->nref;
    free(slot);
    free(m.s);
    free(c->rv);
    c->rv = NULL;
    free(c->ring_off);
    c->ring_off = NULL;
    if (!st) st = sort_ends(c);
    if (!st) st = components(c);
    if (!st) st = face_walks(c);
    return st;
}

/* ------------------------------------------------------------------------ */
/* GEOS                                                                     */

static void geos_error(const char *msg, void *user)
{
    gseg__cov *c = user;
    snprintf(c->geos_msg, sizeof c->geos_msg, "%s", msg);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Marks the vertices GEOS keeps of edge e (all if its answer does not
 * follow the edge). */
static void take_result(gseg__cov *c, GEOSContextHandle_t ctx, const GEOSGeometry *g, const edge *e)
{
    unsigned char *k = c->kept + e->off;
    const GEOSCoordSequence *s = g ? GEOSGeom_getCoordSeq_r(ctx, g) : NULL;
    unsigned int m = 0, j = 0;
    if (s && GEOSCoordSeq_getSize_r(ctx, s, &m)) {
        for (uint32_t i = 0; i < e->n && j < m; i++) {
            double x, y, sx, sy;
            to_crs(c, c->v[e->off + i], &x, &y);
            GEOSCoordSeq_getXY_r(ctx, s, j, &sx, &sy);
            if (x == sx && y == sy) k[i] = 1, j++;
        }
    }
    if (j != m || !m || !k[0] || !k[e->n - 1]) memset(k, 1, e->n);
}

/* One batch of edges (order[0..n-1]) through TopologyPreservingSimplifier. */
static gseg_status simplify_batch(gseg__cov *c, GEOSContextHandle_t ctx, const uint64_t *order,
                                  size_t n, double tol)
{
    GEOSGeometry **gs = gseg__malloc(n, sizeof *gs);
    if (!gs) return GSEG_ERR_NOMEM;
    size_t made = 0;
    for (; made < n; made++) {
        const edge *e = &c->e[order[made] & 0xffffffffu];
        GEOSCoordSequence *s = GEOSCoordSeq_create_r(ctx, e->n, 2);
        for (uint32_t i = 0; s && i < e->n; i++) {
            double x, y;
            to_crs(c, c->v[e->off + i], &x, &y);
            GEOSCoordSeq_setXY_r(ctx, s, i, x, y);
        }
        gs[made] = s ? GEOSGeom_createLineString_r(ctx, s) : NULL;
        if (!gs[made]) break;
    }
    GEOSGeometry *all = made == n ? GEOSGeom_createCollection_r(ctx, GEOS_MULTILINESTRING, gs,
                                                                (unsigned)n)
                                  : NULL;
    if (!all)
        for (size_t i = 0; i < made; i++) GEOSGeom_destroy_r(ctx, gs[i]);
    free(gs);
    GEOSGeometry *res = all ? GEOSTopologyPreserveSimplify_r(ctx, all, tol) : NULL;
    if (all) GEOSGeom_destroy_r(ctx, all);
    if (!res || GEOSGetNumGeometries_r(ctx, res) != (int)n) {
        if (res) GEOSGeom_destroy_r(ctx, res);
        return gseg__err(GSEG_ERR_INTERNAL, "simplification: GEOS failed: %s",
                         c->geos_msg[0] ? c->geos_msg : "unexpected result");
    }
    for (size_t i = 0; i < n; i++)
        take_result(c, ctx, GEOSGetGeometryN_r(ctx, res, (int)i), &c->e[order[i] & 0xffffffffu]);
    GEOSGeom_destroy_r(ctx, res);
    return GSEG_OK;
}

/* All edges through GEOS in batches of nearby rows (sorted by their top):
 * GEOS holds one batch at a time. Edges of different batches are not
 * checked against each other by GEOS; the checks below are. */
static gseg_status run_geos(gseg__cov *c, double tol)
{
    uint64_t *order = gseg__malloc(c->ne + 1, sizeof *order);
    if (!order) return GSEG_ERR_NOMEM;
    for (size_t i = 0; i < c->ne; i++) {
        const edge *e = &c->e[i];
        int32_t top = INT32_MAX;
        for (uint32_t j = 0; j < e->n; j++)
            if (c->v[e->off + j].y < top) top = c->v[e->off + j].y;
        order[i] = (uint64_t)(uint32_t)top << 32 | i;
    }
    qsort(order, c->ne, sizeof *order, cmp_u64);
    memset(c->kept, 0, c->nv);
    GEOSContextHandle_t ctx = GEOS_init_r();
    if (!ctx) {
        free(order);
        return gseg__err(GSEG_ERR_NOMEM, "simplification: cannot start GEOS");
    }
    GEOSContext_setErrorMessageHandler_r(ctx, geos_error, c);
    gseg_status st = GSEG_OK;
    for (size_t a = 0, b; !st && a < c->ne; a = b) {
        size_t nv = 0;
        for (b = a; b < c->ne && (b == a || nv < gseg__simplify_batch); b++)
            nv += c->e[order[b] & 0xffffffffu].n;
        st = simplify_batch(c, ctx, order + a, b - a, tol);
    }
    GEOS_finish_r(ctx);
    free(order);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */

/* Gives section a..b of edge id back its original vertex furthest from
 * the chord, as Douglas-Peucker would have next, or with c->whole all of
 * them; returns how many it gained. */
static size_t restore(gseg__cov *c, uint32_t id, uint32_t a, uint32_t b)
{
    unsigned char *k = c->kept + c->e[id].off;
    const ipt *v = c->v + c->e[id].off;
    size_t n = 0;
    if (c->whole) {
        for (uint32_t i = a + 1; i < b; i++)
            if (!k[i]) k[i] = 1, n++;
        return n;
    }
    uint32_t far = 0;
    int64_t best = -1;
    for (uint32_t i = a + 1; i < b; i++) {
        int64_t d = orient(v[a], v[b], v[i]);
        if (same(v[a], v[b])) d = llabs((int64_t)v[i].x - v[a].x) + llabs((int64_t)v[i].y - v[a].y);
        if (d < 0) d = -d;
        if (!k[i] && d > best) best = d, far = i;
    }
    if (best < 0) return 0;
    k[far] = 1;
    return 1;
}

/* All original vertices of edge id. */
static size_t restore_edge(gseg__cov *c, uint32_t id)
{
    int whole = c->whole;
    c->whole = 1;
    size_t n = restore(c, id, 0, c->e[id].n - 1);
    c->whole = whole;
    return n;
}

typedef struct seg {
    ipt a, b;
    uint32_t e, ia, ib; /* edge, and indices of a and b in it */
} seg;

typedef struct cell_ent {
    uint64_t cell;
    uint32_t s;
} cell_ent;

static int cmp_cell(const void *x, const void *y)
{
    const cell_ent *a = x, *b = y;
    if (a->cell != b->cell) return (a->cell > b->cell) - (a->cell < b->cell);
    return (a->s > b->s) - (a->s < b->s);
}

/* Whether s and t meet anywhere but at one end point they share. */
static int segs_conflict(const seg *s, const seg *t)
{
    if ((s->a.x < t->a.x && s->a.x < t->b.x && s->b.x < t->a.x && s->b.x < t->b.x) ||
        (s->a.x > t->a.x && s->a.x > t->b.x && s->b.x > t->a.x && s->b.x > t->b.x) ||
        (s->a.y < t->a.y && s->a.y < t->b.y && s->b.y < t->a.y && s->b.y < t->b.y) ||
        (s->a.y > t->a.y && s->a.y > t->b.y && s->b.y > t->a.y && s->b.y > t->b.y))
        return 0;
    int o1 = sgn(orient(s->a, s->b, t->a)), o2 = sgn(orient(s->a, s->b, t->b));
    int o3 = sgn(orient(t->a, t->b, s->a)), o4 = sgn(orient(t->a, t->b, s->b));
    if (o1 * o2 > 0 || o3 * o4 > 0) return 0;
    if (o1 || o2 || o3 || o4) /* one point in common: fine if an end of both */
        return !(same(s->a, t->a) || same(s->a, t->b) || same(s->b, t->a) || same(s->b, t->b));
    int vert = s->a.x == s->b.x; /* collinear: overlap along the line */
    int32_t s0 = vert ? s->a.y : s->a.x, s1 = vert ? s->b.y : s->b.x;
    int32_t t0 = vert ? t->a.y : t->a.x, t1 = vert ? t->b.y : t->b.x;
    int32_t lo = s0 < s1 ? s0 : s1, hi = s0 < s1 ? s1 : s0;
    int32_t tlo = t0 < t1 ? t0 : t1, thi = t0 < t1 ? t1 : t0;
    return (lo > tlo ? lo : tlo) < (hi < thi ? hi : thi);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}
static int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

/* Appends the grid cells (side cs) segment s passes through. */
static int add_cells(cell_ent **ce, size_t *n, size_t *cap, const seg *s, uint32_t id, int64_t cs)
{
    ipt a = s->a, b = s->b;
    if (a.x > b.x) {
        ipt t = a;
        a = b;
        b = t;
    }
    for (int64_t cx = a.x / cs; cx <= b.x / cs; cx++) {
        int64_t xl = a.x > cx * cs ? a.x : cx * cs, xr = b.x < (cx + 1) * cs ? b.x : (cx + 1) * cs;
        int64_t y0 = a.y < b.y ? a.y : b.y, y1 = a.y < b.y ? b.y : a.y;
        if (a.x != b.x) { /* the segment's y over [xl, xr], rounded outwards */
            int64_t dx = b.x - a.x, dy = b.y - a.y;
            int64_t ya = floor_div(dy * (xl - a.x), dx), yb = floor_div(dy * (xr - a.x), dx);
            int64_t yc = ceil_div(dy * (xl - a.x), dx), yd = ceil_div(dy * (xr - a.x), dx);
            y0 = a.y + (ya < yb ? ya : yb);
            y1 = a.y + (yc > yd ? yc : yd);
        }
        for (int64_t cy = y0 / cs; cy <= y1 / cs; cy++) {
            cell_ent *p = grow(*ce, cap, *n + 1, sizeof *p);
            if (!p) return 0;
            *ce = p;
            (*ce)[(*n)++] = (cell_ent){(uint64_t)cy << 32 | (uint64_t)cx, id};
        }
    }
    return 1;
}

/* The current segments, and their mean length. */
static seg *current_segments(const gseg__cov *c, size_t *ns, double *mean)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nv; i++) n += c->kept[i];
    seg *sg = gseg__malloc(n + 1, sizeof *sg);
    if (!sg) return NULL;
    double len = 0;
    n = 0;
    for (size_t id = 0; id < c->ne; id++) {
        const edge *e = &c->e[id];
        const ipt *v = c->v + e->off;
        for (uint32_t i = 1, a = 0; i < e->n; i++) {
            if (!c->kept[e->off + i]) continue;
            sg[n++] = (seg){v[a], v[i], (uint32_t)id, a, i};
            len += fabs((double)v[i].x - v[a].x) + fabs((double)v[i].y - v[a].y);
            a = i;
        }
    }
    *ns = n;
    *mean = n ? len / (double)n : 1;
    return sg;
}

/* Check 1: segments meet only at shared end points. Pairs are found
 * through a grid of cells about twice the mean segment length. */
static gseg_status check_crossings(gseg__cov *c, size_t *restored)
{
    size_t ns;
    double mean;
    seg *sg = current_segments(c, &ns, &mean);
    if (!sg) return GSEG_ERR_NOMEM;
    int64_t cs = mean * 2 > 8 ? (int64_t)(mean * 2) : 8;
    cell_ent *ce = NULL;
    size_t nce = 0, capce = 0;
    for (size_t i = 0; i < ns; i++)
        if (!add_cells(&ce, &nce, &capce, &sg[i], (uint32_t)i, cs)) {
            free(ce);
            free(sg);
            return GSEG_ERR_NOMEM;
        }
    qsort(ce, nce, sizeof *ce, cmp_cell);
    for (size_t a = 0, b; a < nce; a = b) {
        for (b = a + 1; b < nce && ce[b].cell == ce[a].cell; b++) {}
        for (size_t i = a; i < b; i++)
            for (size_t j = i + 1; j < b; j++) {
                const seg *s = &sg[ce[i].s], *t = &sg[ce[j].s];
                if (!segs_conflict(s, t)) continue;
                /* Two edges between the same nodes flattened onto one
                 * segment: one of them restored is enough. */
                int twin = (same(s->a, t->a) && same(s->b, t->b)) ||
                           (same(s->a, t->b) && same(s->b, t->a));
                size_t n = restore(c, t->e, t->ia, t->ib);
                if (!twin || !n) n += restore(c, s->e, s->ia, s->ib);
                *restored += n;
            }
    }
    free(ce);
    free(sg);
    return GSEG_OK;
}

/* Section of edge end code at its node: the first or last segment. */
static size_t restore_end(gseg__cov *c, uint32_t code)
{
    const edge *e = &c->e[code >> 1];
    const unsigned char *k = c->kept + e->off;
    uint32_t i;
    if (!(code & 1)) {
        for (i = 1; !k[i]; i++) {}
        return restore(c, code >> 1, 0, i);
    }
    for (i = e->n - 2; !k[i]; i--) {}
    return restore(c, code >> 1, i, e->n - 1);
}

/* Check 2: the edges at each node in their original cyclic order. */
static size_t check_rotations(gseg__cov *c)
{
    size_t restored = 0;
    for (size_t i = 0; i < c->nnd; i++) {
        const node *d = &c->nd[i];
        int turns = 0;
        for (int k = 0; k < d->n; k++)
            turns += !angle_less(end_dir(c, d->end[k], 0), end_dir(c, d->end[(k + 1) % d->n], 0));
        if (turns == 1) continue;
        for (int k = 0; k < d->n; k++) restored += restore_end(c, d->end[k]);
    }
    return restored;
}

/* Check 3: every face walk keeps its orientation. */
static gseg_status check_faces(gseg__cov *c, size_t *restored)
{
    i128 *wa = gseg__calloc(c->nwalk + 1, sizeof *wa);
    if (!wa) return GSEG_ERR_NOMEM;
    for (size_t i = 0; i < c->ne; i++) {
        i128 a = edge_area(c, &c->e[i], 0);
        wa[c->walk[2 * i]] += a;
        wa[c->walk[2 * i + 1]] -= a;
    }
    for (size_t h = 0; h < 2 * c->ne; h++) {
        int32_t w = c->walk[h];
        if ((wa[w] > 0) - (wa[w] < 0) != c->walk_sign[w])
            *restored += restore_edge(c, (uint32_t)(h >> 1));
    }
    free(wa);
    return GSEG_OK;
}

/* Winding number of the closed polyline v[0..n-1] around p; 1 if p is on it. */
static int winding(const ipt *v, size_t n, ipt p)
{
    int w = 0;
    for (size_t i = 0; i < n; i++) {
        ipt a = v[i], b = v[i + 1 < n ? i + 1 : 0];
        int64_t o = orient(a, b, p);
        if (o == 0 && p.x >= (a.x < b.x ? a.x : b.x) && p.x <= (a.x < b.x ? b.x : a.x) &&
            p.y >= (a.y < b.y ? a.y : b.y) && p.y <= (a.y < b.y ? b.y : a.y))
            return 1;
        if (a.y <= p.y) {
            if (b.y > p.y && o > 0) w++;
        } else if (b.y <= p.y && o < 0) {
            w--;
        }
    }
    return w;
}

static int cmp_rep(const void *x, const void *y)
{
    const rep *a = x, *b = y;
    if (a->p.x != b->p.x) return (a->p.x > b->p.x) - (a->p.x < b->p.x);
    return (a->p.y > b->p.y) - (a->p.y < b->p.y);
}

/* Whether the section v[0..n-1] of an edge of part comp, closed by its
 * chord, winds around a point of another part (reps sorted by x). */
static int section_sweeps(const gseg__cov *c, const ipt *v, size_t n, int32_t comp)
{
    ipt lo = v[0], hi = v[0];
    for (size_t i = 1; i < n; i++) {
        if (v[i].x < lo.x) lo.x = v[i].x;
        if (v[i].y < lo.y) lo.y = v[i].y;
        if (v[i].x > hi.x) hi.x = v[i].x;
        if (v[i].y > hi.y) hi.y = v[i].y;
    }
    size_t a = 0, b = c->ncomp;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (c->rep[m].p.x < lo.x) a = m + 1;
        else b = m;
    }
    for (; a < c->ncomp && c->rep[a].p.x <= hi.x; a++) {
        const rep *r = &c->rep[a];
        if (r->comp != comp && r->p.y >= lo.y && r->p.y <= hi.y && winding(v, n, r->p)) return 1;
    }
    return 0;
}

/* Check 4: no simplified section sweeps over another part of the graph. */
static size_t check_jumps(gseg__cov *c)
{
    size_t restored = 0;
    for (size_t id = 0; id < c->ne; id++) {
        const edge *e = &c->e[id];
        const unsigned char *k = c->kept + e->off;
        for (uint32_t i = 1, a = 0; i < e->n; i++) {
            if (!k[i]) continue;
            if (i > a + 1 && section_sweeps(c, c->v + e->off + a, i - a + 1, e->comp))
                restored += restore(c, (uint32_t)id, a, i);
            a = i;
        }
    }
    return restored;
}

static int edge_simplified(const gseg__cov *c, uint32_t id)
{
    const edge *e = &c->e[id];
    return memchr(c->kept + e->off, 0, e->n) != NULL;
}

/* Check 5: polygons with a simplified edge are valid (belt and braces:
 * 1-4 imply it, up to rounding in the CRS coordinates). */
static gseg_status check_valid(gseg__cov *c, size_t *restored)
{
    for (size_t i = 0; i < c->npoly; i++) {
        size_t r0 = c->ring_ref[c->poly_ring[i]], r1 = c->ring_ref[c->poly_ring[i + 1]];
        int simplified = 0;
        for (size_t r = r0; !simplified && r < r1; r++)
            simplified = edge_simplified(c, c->ref[r] >> 1);
        if (!simplified) continue;
        OGRGeometryH g;
        gseg_status st = gseg__cov_polygon(c, i, &g, NULL);
        if (st) return st;
        CPLPushErrorHandler(CPLQuietErrorHandler);
        int valid = OGR_G_IsValid(g);
        CPLPopErrorHandler();
        OGR_G_DestroyGeometry(g);
        if (valid) continue;
        for (size_t r = r0; r < r1; r++)
            *restored += restore_edge(c, c->ref[r] >> 1);
    }
    return GSEG_OK;
}

/* Runs the checks until a round restores nothing; restored[k]: vertices
 * given back by check k + 1. Each round that restores something adds
 * vertices, and the original outlines pass every check, so this ends.
 * The first SPLIT_ROUNDS rounds give a failing section one vertex back
 * (most failures need no more), later ones all. */
static gseg_status settle(gseg__cov *c, size_t restored[5], int *rounds)
{
    qsort(c->rep, c->ncomp, sizeof *c->rep, cmp_rep);
    for (;; ++*rounds) {
        size_t r[5] = {0};
        c->whole = *rounds >= SPLIT_ROUNDS;
        gseg_status st = check_crossings(c, &r[0]);
        if (!st) r[1] = check_rotations(c);
        if (!st && !r[0] && !r[1]) st = check_faces(c, &r[2]);
        if (!st && !r[0] && !r[1] && !r[2]) r[3] = check_jumps(c);
        if (!st && !r[0] && !r[1] && !r[2] && !r[3]) st = check_valid(c, &r[4]);
        if (st) return st;
        size_t any = 0;
        for (int k = 0; k < 5; k++) any += r[k], restored[k] += r[k];
        if (!any) return GSEG_OK;
    }
}

gseg_status gseg__cov_simplify(gseg__cov *c, double tolerance)
{
    gseg_status st = build(c);
    if (st || !c->ne) return st;
    if (!(tolerance > 0)) {
        memset(c->kept, 1, c->nv);
        return GSEG_OK;
    }
    if ((st = run_geos(c, tolerance))) return st;
    size_t geos_kept = 0, restored[5] = {0};
    for (size_t i = 0; i < c->nv; i++) geos_kept += c->kept[i];
    int rounds = 0;
    st = settle(c, restored, &rounds);
    CPLDebug("GSEG",
             "simplify: %zu polygons, %zu edges, %zu nodes: %zu vertices, %zu after GEOS; "
             "restored %zu (crossings), %zu (order at nodes), %zu (faces), %zu (jumps), "
             "%zu (invalid); %d rounds of checks",
             c->npoly, c->ne, c->nnd, c->nv, geos_kept, restored[0], restored[1], restored[2],
             restored[3], restored[4], rounds + 1);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */

/* Ring r in CRS coordinates into c->x, c->y; returns the point count. */
static size_t ring_points(gseg__cov *c, size_t r)
{
    size_t n = 0;
    for (size_t i = c->ring_ref[r]; i < c->ring_ref[r + 1]; i++) {
        const edge *e = &c->e[c->ref[i] >> 1];
        int back = c->ref[i] & 1;
        if (!reserve_xy(c, n + e->n)) return 0;
        for (uint32_t j = 0; j < e->n; j++) {
            size_t at = e->off + (back ? e->n - 1 - j : j);
            if (!c->kept[at] || (j == 0 && n > 0)) continue;
            to_crs(c, c->v[at], &c->x[n], &c->y[n]);
            n++;
        }
    }
    return n;
}

gseg_status gseg__cov_polygon(gseg__cov *c, size_t i, OGRGeometryH *g, int *tag)
{
    *g = NULL;
    if (!c->built || i >= c->npoly)
        return gseg__err(GSEG_ERR_INTERNAL, "simplification: no polygon %zu", i);
    OGRGeometryH p = OGR_G_CreateGeometry(wkbPolygon);
    for (size_t r = c->poly_ring[i]; p && r < c->poly_ring[i + 1]; r++) {
        size_t n = ring_points(c, r);
        OGRGeometryH ring = n ? OGR_G_CreateGeometry(wkbLinearRing) : NULL;
        if (!ring) {
            OGR_G_DestroyGeometry(p);
            return n ? gseg__err(GSEG_ERR_NOMEM, "out of memory for an outline") : GSEG_ERR_NOMEM;
        }
        OGR_G_SetPoints(ring, (int)n, c->x, sizeof(double), c->y, sizeof(double), NULL, 0);
        OGR_G_AddGeometryDirectly(p, ring);
    }
    if (!p) return gseg__err(GSEG_ERR_NOMEM, "out of memory for an outline");
    *g = p;
    if (tag) *tag = c->tag[i];
    return GSEG_OK;
}
