/*
 * net.h — the C face of the libtorch shim (src/infer/net.cpp), private to
 * libgseg. net.cpp is the only C++ in the library: every function here
 * catches c10::Error, std::exception and anything else, and turns it into a
 * gseg_status with a one-line message (gseg_last_error()); no exception ever
 * reaches C.
 *
 * The network is a U-Net with a torchvision ResNet encoder, laid out exactly
 * as segmentation-models-pytorch's Unet(encoder_name=..., decoder_channels=
 * (256, 128, 64, 32, 16)): its parameter and buffer names are SMP's
 * state-dict keys ("encoder.conv1.weight", "decoder.blocks.4.conv2.1.
 * running_var", "segmentation_head.0.bias"), so state dicts move between gseg
 * and Python without renaming.
 *
 * Threads: one gseg__net is used by one thread at a time. libtorch's
 * intra-op thread count is process-wide (gseg__net_prepare sets it).
 * File I/O is not done here: src/infer/netfile.c reads and writes tensors
 * through gseg__net_tensor_* so files go through GDAL's VSI like every
 * other input.
 */
#ifndef GSEG_NET_H
#define GSEG_NET_H

#include "gseg.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gseg__net gseg__net;

/* "resnet18", "resnet34", "resnet50", "resnet101", "resnet152". */
int gseg__net_encoder_known(const char *encoder);

/* The encoder with this block layout (bottleneck blocks or basic blocks,
 * blocks per stage), or NULL. Static. */
const char *gseg__net_encoder_guess(int bottleneck, const int blocks[4]);

/* A new network with PyTorch's default initialisation (torchvision's for the
 * encoder, SMP's for the decoder and head), deterministic for a seed.
 * in_channels >= 1, outputs >= 1 (1 = binary logit, K = class logits).
 * On CPU, in fp32, in training mode. */
gseg_status gseg__net_new(const char *encoder, int in_channels, int outputs,
                          uint64_t seed, gseg__net **out);
void gseg__net_free(gseg__net *net);

/* The state dict: parameters then buffers, in SMP's order. Names live as
 * long as the net. is_int: 1 for int64 (num_batches_tracked), else float32. */
int gseg__net_tensor_count(const gseg__net *net);
const char *gseg__net_tensor_name(const gseg__net *net, int i);
int gseg__net_tensor_find(const gseg__net *net, const char *name); /* -1 */
int gseg__net_tensor_ndim(const gseg__net *net, int i);
int64_t gseg__net_tensor_dim(const gseg__net *net, int i, int d);
int gseg__net_tensor_is_int(const gseg__net *net, int i);
int64_t gseg__net_tensor_numel(const gseg__net *net, int i);
/* Copies tensor i to/from host memory (float32, or int64 when is_int),
 * n = numel. Setting invalidates the prepared (folded) copy. */
gseg_status gseg__net_tensor_get(gseg__net *net, int i, void *dst, int64_t n);
gseg_status gseg__net_tensor_set(gseg__net *net, int i, const void *src, int64_t n);
/* FNV-1a digest of every tensor's bytes (parameters and buffers): equal
 * digests, equal models. */
uint64_t gseg__net_digest(const gseg__net *net);
/* Parameter count (learnable values). */
int64_t gseg__net_param_count(const gseg__net *net);

/* Inference settings. device: "cpu", "cuda", "cuda:N". threads: intra-op
 * threads, 0 = every CPU of the process's affinity (process-wide). fold_bn:
 * fold BatchNorm into the convolutions (eval mode). precision
 * GSEG_PRECISION_AUTO resolves to bf16 on CPUs with avx512_bf16 or AMX, fp32
 * on other CPUs, fp16 on CUDA. Puts the net in eval mode. */
gseg_status gseg__net_prepare(gseg__net *net, const char *device,
                              gseg_precision precision, int threads,
                              int fold_bn);
/* The precision prepare resolved to. */
gseg_precision gseg__net_precision(const gseg__net *net);
/* The CPU threads of the prepared net's forward: libtorch's intra-op
 * threads on the CPU, 0 on a GPU, -1 before prepare. */
int gseg__net_cpu_threads(const gseg__net *net);
/* 1 if the CPU has native bf16 dot products (avx512_bf16 or AMX-BF16). */
int gseg__cpu_has_bf16(void);

/* Inference: in is n x c x h x w float32 (normalised), out receives
 * n x outputs x h x w probabilities (sigmoid for one output, softmax over
 * outputs otherwise), or raw logits when want_logits. Any h, w >= 1: the
 * input is padded (edge replication) to a multiple of 32 and the output
 * cropped back. Calls gseg__net_prepare(net, "cpu", AUTO, 0, 1) first if it
 * was never prepared. */
gseg_status gseg__net_forward(gseg__net *net, const float *in, int n, int c,
                              int h, int w, float *out, int want_logits);

/* On CPU, gseg__net_forward's tensors come from the net's forward arena
 * (src/infer/alloc.h): the first call with an input shape is recorded and
 * planned, later calls with that shape reuse one block of memory (plans of
 * up to four shapes are kept). bytes: the plan's size for the last call's
 * shape (0 with GSEG_FORWARD_ARENA=NO); recordings: calls recorded since
 * the net was made (one per shape while every call follows its plan). For
 * tests and measurements. */
void gseg__net_arena_stats(const gseg__net *net, size_t *bytes, int *recordings);

/* Test-time augmentation of gseg__net_forward: 0 none, 1 the mean over the
 * input as is and flipped left-right, up-down and both (4 passes). */
void gseg__net_set_tta(gseg__net *net, int tta);

/* Frees the weights the folded inference does not use (convolution weights
 * and BatchNorm tensors before folding), once prepared with fold_bn. The net
 * can then only run gseg__net_forward with those settings: reading, setting,
 * preparing again and training fail. Saves a copy of the weights' memory in
 * prediction runs. Called before gseg__net_prepare, it frees each layer as
 * prepare folds it, so the two copies never coexist. No-op when prepared
 * without folding. */
gseg_status gseg__net_release_unfolded(gseg__net *net);

/* Encoder feature `level` (1..5: stem, layer1..layer4) for a batch, as
 * torchvision computes it (for tests). *shape gets N, C, H, W; out must
 * hold cap floats. Uses the prepared settings. */
gseg_status gseg__net_features(gseg__net *net, const float *in, int n, int c,
                               int h, int w, int level, float *out,
                               int64_t cap, int64_t shape[4]);

/* Training. gseg__net_train_setup creates an AdamW optimiser (PyTorch's
 * defaults for betas and eps) over all parameters, on the prepared device;
 * weights stay fp32 and the forward runs under autocast at `precision`
 * (fp32, bf16; AUTO = bf16 on CUDA and on CPUs with native bf16, else
 * fp32; fp16 is refused: it would need loss scaling). Training mode. */
gseg_status gseg__net_train_setup(gseg__net *net, double lr, double weight_decay,
                                  gseg_precision precision);
/* The precision train_setup resolved to. */
gseg_precision gseg__net_train_precision(const gseg__net *net);
/* Learning rate, and AdamW's beta1 when beta1 > 0 (one-cycle momentum). */
gseg_status gseg__net_set_lr(gseg__net *net, double lr, double beta1);
/* Forward, loss and backward of one (micro-)batch; the gradients, scaled
 * by `scale` (1 / accumulation steps), add to those already held. target
 * is n x h x w class indices (0/1 for binary) as float; valid (n x h x w,
 * NULL = all) excludes pixels from the loss. Loss: BCE + soft Dice
 * (binary) or cross-entropy + mean soft Dice over classes, in fp32.
 * *loss gets the unscaled value. */
gseg_status gseg__net_train_accumulate(gseg__net *net, const float *in, int n, int c,
                                       int h, int w, const float *target,
                                       const uint8_t *valid, double scale, double *loss);
/* The optimiser step over the accumulated gradients, which are then
 * zeroed. With a process group attached, the gradients are first averaged
 * over the ranks, in one all-reduce that also sums *flag (NULL: none; a
 * stop request any rank may raise), and after the step every rank takes
 * rank 0's BatchNorm statistics: all ranks hold the same model. */
gseg_status gseg__net_train_apply(gseg__net *net, double *flag);
/* Data parallel training over d's ranks (borrowed; NULL detaches): rank
 * 0's parameters and BatchNorm statistics are broadcast to all. Call on
 * every rank after train_setup (and after loading a checkpoint). */
typedef struct gseg__dist gseg__dist;
gseg_status gseg__net_attach_dist(gseg__net *net, gseg__dist *d);
/* accumulate (scale 1) + apply. */
gseg_status gseg__net_train_step(gseg__net *net, const float *in, int n, int c,
                                 int h, int w, const float *target,
                                 const uint8_t *valid, double *loss);

/* The optimiser's state (AdamW moments and step counts) in libtorch's own
 * archive format (torch::save/torch::load), so that a resumed training
 * continues exactly. gseg__net_opt_image serialises it into a malloc'd
 * buffer (the caller frees), on the training thread, for any thread to
 * write (gseg__write_file_atomic); gseg__net_opt_load reads such a file. */
gseg_status gseg__net_opt_image(gseg__net *net, void **data, size_t *size);
gseg_status gseg__net_opt_load(gseg__net *net, const char *path);

/* The libtorch this gseg was built against: major * 100 + minor (113). */
int gseg__net_torch_version(void);

/* Tensors of a torch.save file, as far as libtorch's torch::pickle_load
 * reads it (a plain dict of name -> tensor). fn gets each tensor as float32
 * (is_int 0) or int64 (is_int 1), contiguous, valid for the call; a status
 * other than GSEG_OK stops the walk and is returned. `what` names the file
 * in messages. */
typedef gseg_status (*gseg__tensor_fn)(void *user, const char *name, int ndim,
                                       const int64_t *shape, int is_int,
                                       const void *data);
gseg_status gseg__pickle_tensors(const char *what, const void *bytes, size_t n,
                                 gseg__tensor_fn fn, void *user);

#ifdef __cplusplus
}
#endif
#endif
