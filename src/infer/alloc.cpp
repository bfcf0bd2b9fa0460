/*
 * alloc.cpp — libgseg's CPU allocator for libtorch tensors: a caching policy
 * for training and per-network forward arenas for inference. See alloc.h.
 *
 * Why the arena: libtorch's default CPU allocator hands each activation to
 * glibc. Above glibc's mmap threshold a block is mapped and unmapped, so
 * every forward faults its activations in afresh; below it (the threshold
 * rises to 32 MiB after the first large free) the heap fragments, since
 * blocks of one layer's size are split for another's. Measured with
 * gseg-predict (4096^2 scene, batch of four 256^2 tiles, fp32): the heap held
 * about 100 MB more than the live peak; mapping every block instead freed
 * that but ran 44 % slower. A plan made once gives the live peak and no
 * faults.
 */
#include "alloc.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <c10/core/CPUAllocator.h>
#include <torch/version.h>
#pragma GCC diagnostic pop

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <new>
#include <unordered_map>

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>

namespace gseg {

namespace {

constexpr size_t kAlign = 64;          /* c10's alignment */
constexpr size_t kHeader = 64;         /* before each block; keeps the alignment */
constexpr size_t kMinCached = 1 << 20; /* caching: smaller blocks go to glibc */
constexpr int kMaxRecordings = 3;

enum Kind : uint32_t { HEAP, RECORDED, PLANNED };

struct Header {
    size_t n;            /* bytes asked for */
    ForwardArena *arena; /* RECORDED and PLANNED blocks */
    uint32_t kind;
    uint32_t index; /* the block's number in the arena's recording */
    uint64_t gen;   /* the recording it belongs to */
};
static_assert(sizeof(Header) <= kHeader, "block header");

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* ---- the heap, with the caching policy --------------------------------- */

std::atomic<bool> g_caching{false};

/* Free lists by exact size, up to a quarter of the machine's memory. */
struct Pool {
    std::mutex mu;
    std::unordered_map<size_t, std::vector<Header *>> free;
    size_t cached = 0, limit = 0;
};

Pool &pool()
{
    static Pool *p = [] {
        auto *q = new Pool; /* never destroyed: tensors may outlive statics */
        long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
        q->limit = pages > 0 && size > 0 ? (size_t)pages * (size_t)size / 4 : (size_t)1 << 30;
        return q;
    }();
    return *p;
}

Header *heap_take(size_t n)
{
    if (n >= kMinCached && g_caching.load(std::memory_order_relaxed)) {
        Pool &p = pool();
        std::lock_guard<std::mutex> lock(p.mu);
        auto it = p.free.find(n);
        if (it != p.free.end() && !it->second.empty()) {
            Header *h = it->second.back();
            it->second.pop_back();
            p.cached -= n;
            return h;
        }
    }
    void *base = nullptr;
    if (n > SIZE_MAX - kHeader || posix_memalign(&base, kAlign, n + kHeader) != 0)
        throw std::bad_alloc();
    return static_cast<Header *>(base);
}

void heap_give(Header *h)
{
    if (h->n >= kMinCached && g_caching.load(std::memory_order_relaxed)) {
        Pool &p = pool();
        std::lock_guard<std::mutex> lock(p.mu);
        if (p.cached + h->n <= p.limit) {
            p.free[h->n].push_back(h);
            p.cached += h->n;
            return;
        }
    }
    std::free(h);
}

void *data_of(Header *h) { return reinterpret_cast<char *>(h) + kHeader; }

void *heap_block(size_t n, Kind kind, ForwardArena *a, uint32_t index, uint64_t gen)
{
    Header *h = heap_take(n);
    *h = Header{n, a, kind, index, gen};
    return data_of(h);
}

thread_local ForwardArena *tl_arena = nullptr;

} /* namespace */

/* ---- the forward arena ------------------------------------------------- */

/* One plan per key (input shape and options), a few kept: the GDAL driver
 * runs a tile row at a time, so its batches alternate between full and
 * partial. Plans are laid out from offset 0 and share one block, as large
 * as the largest: a net runs one call at a time. */
class ForwardArena {
  public:
    ~ForwardArena() { std::free(base_); }

    void *take(size_t n);
    /* Returns true when the caller must delete the arena (last reference). */
    bool give(Header *h);
    bool begin(const std::vector<int64_t> &key);
    void end();
    bool unref()
    {
        std::lock_guard<std::mutex> lock(mu_);
        return --refs_ == 0;
    }
    size_t bytes() const
    {
        std::lock_guard<std::mutex> lock(mu_);
        return cur_ && !off_ ? cur_->size : 0;
    }
    int recordings() const
    {
        std::lock_guard<std::mutex> lock(mu_);
        return recordings_;
    }

  private:
    struct Block {
        size_t slot;        /* bytes in the arena, header included */
        int64_t born, died; /* clock ticks; died < 0: outlived the call */
        size_t offset;
        bool planned;
    };
    struct Plan {
        std::vector<int64_t> key;
        std::vector<Block> blocks;
        size_t size = 0; /* 0: not planned (yet) */
        int recordings = 0;
        bool off = false; /* strayed too often: this key uses the heap */
        uint64_t used = 0;
    };
    enum Mode { RECORD, REPLAY };
    static constexpr size_t kMaxPlans = 4;

    size_t plan(Plan &p);
    bool overlaps_live(const Block &b) const;
    Plan *find_or_add(const std::vector<int64_t> &key);

    mutable std::mutex mu_;
    std::list<Plan> plans_;
    Plan *cur_ = nullptr; /* the plan of the call in progress, or the last */
    Mode mode_ = RECORD;
    bool off_ = false; /* a planned block outlived its call: heap only */
    int64_t clock_ = 0;
    uint64_t gen_ = 0, tick_ = 0;
    int recordings_ = 0; /* calls recorded, all keys */
    bool in_scope_ = false;
    size_t next_ = 0;      /* replay: the next allocation's number */
    bool strayed_ = false; /* replay: some allocation was not the plan's */
    char *base_ = nullptr;
    size_t size_ = 0;
    std::vector<uint32_t> live_; /* planned blocks of cur_ in use */
    long refs_ = 1;              /* the network + blocks carrying a pointer here */
};

bool ForwardArena::overlaps_live(const Block &b) const
{
    for (uint32_t j : live_) {
        const Block &o = cur_->blocks[j];
        if (b.offset < o.offset + o.slot && o.offset < b.offset + b.slot) return true;
    }
    return false;
}

void *ForwardArena::take(size_t n)
{
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Block> &blocks = cur_->blocks;
    if (mode_ == RECORD) {
        uint32_t index = (uint32_t)blocks.size();
        void *p = heap_block(n, RECORDED, this, index, gen_);
        blocks.push_back(Block{round_up(n + kHeader, kAlign), clock_++, -1, 0, false});
        refs_++;
        return p;
    }
    size_t i = next_++;
    if (i < blocks.size() && blocks[i].planned &&
        blocks[i].slot == round_up(n + kHeader, kAlign) && !overlaps_live(blocks[i])) {
        auto *h = reinterpret_cast<Header *>(base_ + blocks[i].offset);
        *h = Header{n, this, PLANNED, (uint32_t)i, gen_};
        live_.push_back((uint32_t)i);
        refs_++;
        return data_of(h);
    }
    strayed_ = true;
    return heap_block(n, HEAP, nullptr, 0, 0);
}

bool ForwardArena::give(Header *h)
{
    std::lock_guard<std::mutex> lock(mu_);
    if (h->kind == PLANNED) {
        auto it = std::find(live_.begin(), live_.end(), h->index);
        if (it != live_.end()) live_.erase(it);
    } else {
        if (mode_ == RECORD && in_scope_ && h->gen == gen_) cur_->blocks[h->index].died = clock_++;
        heap_give(h);
    }
    return --refs_ == 0;
}

/* Greedy by size: the largest blocks first, each at the lowest offset where
 * it overlaps no placed block alive at the same time. Returns the plan's
 * size (0: nothing to plan). */
size_t ForwardArena::plan(Plan &p)
{
    std::vector<Block> &blocks = p.blocks;
    std::vector<uint32_t> order;
    for (uint32_t i = 0; i < blocks.size(); i++) {
        blocks[i].planned = blocks[i].died >= 0;
        if (blocks[i].planned) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return blocks[a].slot > blocks[b].slot; });
    std::vector<uint32_t> placed, near;
    size_t total = 0;
    for (uint32_t i : order) {
        Block &b = blocks[i];
        near.clear();
        for (uint32_t j : placed)
            if (b.born < blocks[j].died && blocks[j].born < b.died) near.push_back(j);
        std::sort(near.begin(), near.end(),
                  [&](uint32_t x, uint32_t y) { return blocks[x].offset < blocks[y].offset; });
        size_t off = 0;
        for (uint32_t j : near) {
            if (off + b.slot <= blocks[j].offset) break;
            off = std::max(off, blocks[j].offset + blocks[j].slot);
        }
        b.offset = off;
        total = std::max(total, off + b.slot);
        placed.push_back(i);
    }
    return total;
}

ForwardArena::Plan *ForwardArena::find_or_add(const std::vector<int64_t> &key)
{
    for (Plan &p : plans_)
        if (p.key == key) return &p;
    if (plans_.size() == kMaxPlans) { /* the least recently used goes */
        auto lru = plans_.begin();
        for (auto it = plans_.begin(); it != plans_.end(); ++it)
            if (it->used < lru->used) lru = it;
        plans_.erase(lru);
    }
    plans_.emplace_back();
    plans_.back().key = key;
    return &plans_.back();
}

bool ForwardArena::begin(const std::vector<int64_t> &key)
{
    std::lock_guard<std::mutex> lock(mu_);
    if (off_) return false;
    cur_ = find_or_add(key);
    cur_->used = ++tick_;
    if (cur_->off) return false;
    if (cur_->size) {
        mode_ = REPLAY;
        next_ = 0;
        strayed_ = false;
        return true;
    }
    /* Recording: the heap serves the call, so the block goes meanwhile
     * (no planned block is alive between calls) and comes back sized for
     * every plan kept. */
    std::free(base_);
    base_ = nullptr;
    size_ = 0;
    mode_ = RECORD;
    cur_->blocks.clear();
    clock_ = 0;
    gen_++;
    in_scope_ = true;
    return true;
}

void ForwardArena::end()
{
    std::unique_lock<std::mutex> lock(mu_);
    if (mode_ == REPLAY) {
        if (!live_.empty()) {
            /* Someone kept a planned block: its bytes must never be handed
             * out again. The arena goes with its last block. */
            off_ = true;
            CPLDebug("GSEG", "forward arena: a block outlived the call; arena off");
        } else if (strayed_ || next_ != cur_->blocks.size()) {
            cur_->size = 0;
            cur_->off = cur_->recordings >= kMaxRecordings;
            CPLDebug("GSEG", "forward arena: the call strayed from the plan; %s",
                     cur_->off ? "this shape uses the heap" : "recording again");
        }
        return;
    }
    in_scope_ = false;
    cur_->recordings++;
    recordings_++;
    cur_->size = plan(*cur_);
    cur_->off = cur_->size == 0;
    size_t total = 0, blocks = cur_->blocks.size(), planned = cur_->size;
    for (const Plan &p : plans_) total = std::max(total, p.size);
    lock.unlock();
#if defined(__GLIBC__)
    /* The recording's blocks came from the heap: give its holes back before
     * the arena takes their place. */
    malloc_trim(0);
#endif
    void *base = nullptr;
    if (total && posix_memalign(&base, 4096, total) != 0) base = nullptr;
    lock.lock();
    if (total && !base) off_ = true;
    base_ = static_cast<char *>(base);
    size_ = total;
    mode_ = REPLAY;
    CPLDebug("GSEG", "forward arena: a plan of %.1f MB for %zu blocks; the arena holds %.1f MB",
             planned / 1e6, blocks, total / 1e6);
}

/* ---- the allocator ----------------------------------------------------- */

namespace {

void release(void *ptr)
{
    if (!ptr) return;
    auto *h = reinterpret_cast<Header *>(static_cast<char *>(ptr) - kHeader);
    if (h->kind == HEAP) {
        heap_give(h);
        return;
    }
    ForwardArena *a = h->arena;
    if (a->give(h)) delete a;
}

/* libtorch 2.3 made Allocator::allocate non-const. */
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define GSEG_ALLOCATE_CONST
#else
#define GSEG_ALLOCATE_CONST const
#endif

class CpuAllocator final : public c10::Allocator {
  public:
    c10::DataPtr allocate(size_t n) GSEG_ALLOCATE_CONST override
    {
        void *p = nullptr;
        if (n) p = tl_arena ? tl_arena->take(n) : heap_block(n, HEAP, nullptr, 0, 0);
        return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
    }
    c10::DeleterFnPtr raw_deleter() const override { return &release; }
    /* Required from libtorch 2.3 on (pure virtual there). */
    void copy_data(void *dst, const void *src, std::size_t n) const { std::memcpy(dst, src, n); }
};

void install()
{
    static CpuAllocator alloc;
    static std::once_flag once;
    std::call_once(once, [] { c10::SetCPUAllocator(&alloc, 1); });
}

} /* namespace */

void use_caching_allocator()
{
    if (!CPLTestBool(CPLGetConfigOption("GSEG_CACHING_ALLOCATOR", "YES"))) return;
    g_caching = true;
    install();
}

ForwardArena *new_arena()
{
    if (!CPLTestBool(CPLGetConfigOption("GSEG_FORWARD_ARENA", "YES"))) return nullptr;
    install();
    return new ForwardArena();
}

void drop_arena(ForwardArena *a)
{
    if (a && a->unref()) delete a;
}

size_t arena_bytes(const ForwardArena *a) { return a ? a->bytes() : 0; }
int arena_recordings(const ForwardArena *a) { return a ? a->recordings() : 0; }

ArenaScope::ArenaScope(ForwardArena *a, const std::vector<int64_t> &key) : a_(nullptr)
{
    if (a && !tl_arena && a->begin(key)) {
        a_ = a;
        tl_arena = a;
    }
}

ArenaScope::~ArenaScope()
{
    if (!a_) return;
    tl_arena = nullptr;
    a_->end();
}

} /* namespace gseg */
