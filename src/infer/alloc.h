/*
 * alloc.h — libgseg's CPU allocator for libtorch tensors (src/infer/
 * alloc.cpp), private to the shim (C++ only).
 *
 * Two policies behind one c10 allocator, installed process-wide on first use:
 *
 * - Caching (training): blocks of 1 MiB and more are kept on free lists by
 *   exact size and reused, up to a quarter of the machine's memory; a
 *   training step allocates the same sizes every step, and handing them back
 *   to glibc made each step fault its activations in afresh (about a tenth
 *   of a resnet50 step, measured here). Autograd's lifetimes vary with the
 *   step, so training is not planned like the forward below.
 * - Forward arena (inference): one network's forward call allocates the same
 *   tensors in the same order every time for the same input shape. The first
 *   call is recorded (sizes, birth and death of each block, from the heap);
 *   the blocks are then laid out in one arena, greedy by size, so blocks whose
 *   lifetimes overlap never share bytes (the memory planning of ggml-alloc,
 *   TFLite's arena planner or TorchScript's static runtime). Later calls with
 *   the same shape take their blocks from the arena: no page faults, and the
 *   heap no longer fragments under activations of every size. Plans of up to
 *   four shapes are kept (full and partial batches alternate in the GDAL
 *   driver) and share one block as large as the largest plan, about the
 *   forward's peak of live activations; recording a new shape frees the
 *   block meanwhile, so the heap's copy and the block never coexist.
 *   Safety: a block is served from the arena only if its size is the recorded
 *   one and no live arena block overlaps it; anything else comes from the
 *   heap. A call that strays from its plan is re-recorded (three times at
 *   most, then that shape uses the heap); a planned block still alive after the
 *   call (kept by someone) turns the arena off for good, so its bytes are
 *   never handed out twice.
 *
 * Threads: allocations inside an ArenaScope on the scope's thread use its
 * arena; other threads (libtorch's intra-op workers, readers) use the heap.
 * A block may be freed on any thread. One arena serves one network, used by
 * one thread at a time (net.h's rule).
 *
 * Config: GSEG_CACHING_ALLOCATOR=NO and GSEG_FORWARD_ARENA=NO turn each
 * policy off (for measurements).
 */
#ifndef GSEG_ALLOC_H
#define GSEG_ALLOC_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gseg {

/* Installs the allocator with the caching policy for blocks allocated outside
 * arenas (idempotent), unless GSEG_CACHING_ALLOCATOR=NO. */
void use_caching_allocator();

class ForwardArena;

/* A network's arena: created with the network (new_arena returns nullptr
 * when GSEG_FORWARD_ARENA=NO), dropped when it is freed; the arena's memory
 * goes when its last block does. */
ForwardArena *new_arena();
void drop_arena(ForwardArena *a);

/* Bytes of the plan of the last call's key (0 while recording or when
 * off), and how many calls were recorded, all keys together. */
size_t arena_bytes(const ForwardArena *a);
int arena_recordings(const ForwardArena *a);

/* Tensors allocated on this thread while the scope lives come from the arena
 * (a == nullptr: no effect). key: what makes the allocation sequence what it
 * is (the input's shape, the options); a new key starts a new recording. */
class ArenaScope {
  public:
    ArenaScope(ForwardArena *a, const std::vector<int64_t> &key);
    ~ArenaScope();
    ArenaScope(const ArenaScope &) = delete;
    ArenaScope &operator=(const ArenaScope &) = delete;

  private:
    ForwardArena *a_;
};

} /* namespace gseg */

#endif
