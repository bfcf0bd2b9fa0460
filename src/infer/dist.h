/*
 * dist.h — multi-process (distributed data parallel) training over
 * torch.distributed's c10d, part of the libtorch shim.
 *
 * Every process runs the same gseg_train; they meet at a c10d TCPStore that
 * rank 0 serves at MASTER_ADDR:MASTER_PORT, then form a process group: Gloo
 * for CPU training, NCCL for CUDA (CUDA builds). The conventions are
 * torchrun's and Slurm's, so `torchrun --nproc-per-node 2 gseg-train ...`
 * and `srun gseg-train ...` both work.
 *
 * Threads: a gseg__dist is used by one thread (the trainer); collectives
 * are blocking. Every rank must make the same calls in the same order.
 */
#ifndef GSEG_DIST_H
#define GSEG_DIST_H

#include "gseg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where this process stands, from the environment. */
typedef struct gseg__dist_env {
    int rank, world, local_rank;
    char addr[256];  /* rank 0's host */
    int port;
    const char *source; /* "torchrun", "slurm" or "none" */
} gseg__dist_env;

/* Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (torchrun),
 * else SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID inside an srun
 * step (MASTER_ADDR required when the step spans several nodes); world 1
 * when neither is set. Inconsistent values are an error. */
gseg_status gseg__dist_env_read(gseg__dist_env *e);

typedef struct gseg__dist gseg__dist;

/* 1 if this gseg was built with c10d (GSEG_TORCH_DIST). */
int gseg__dist_available(void);
/* Joins the process group of e (world > 1): a TCPStore (rank 0 serves),
 * then Gloo, or NCCL when cuda. timeout_s bounds the rendezvous and each
 * collective. */
gseg_status gseg__dist_new(const gseg__dist_env *e, int cuda, double timeout_s,
                           gseg__dist **out);
void gseg__dist_free(gseg__dist *d);
int gseg__dist_rank(const gseg__dist *d);
int gseg__dist_world(const gseg__dist *d);
/* Sums n doubles over all ranks, in place (metrics, stop flags). */
gseg_status gseg__dist_allreduce_f64(gseg__dist *d, double *buf, int n);

#ifdef __cplusplus
}

/* For net.cpp: collectives on tensors, which throw on failure. */
#include <vector>
namespace at {
class Tensor;
}
/* Sums t (one contiguous tensor on the group's device) over all ranks. */
void gseg__dist_allreduce_sum(gseg__dist *d, at::Tensor &t);
/* Replaces each tensor (all of one dtype, on the group's device) with
 * root's. */
void gseg__dist_broadcast(gseg__dist *d, std::vector<at::Tensor> &t, int root);
#endif

#endif
