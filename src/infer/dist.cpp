/*
 * dist.cpp — the process group for multi-process training (see dist.h).
 * Built with c10d (GSEG_TORCH_DIST: libtorch's distributed headers and
 * Gloo's); without it, gseg__dist_new says how to get it.
 */
#include "dist.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <torch/torch.h>
#ifdef GSEG_TORCH_DIST
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(GSEG_TORCH_CUDA) && defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define GSEG_NCCL 1
#endif
#endif
#if defined(C10_USE_GLOG) && __has_include(<glog/logging.h>)
#include <glog/logging.h>
#define GSEG_GLOG 1
#endif
#pragma GCC diagnostic pop

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

extern "C" {
#include "internal.h"
}

namespace {

/* An integer environment variable: 1 and *v set if present and valid,
 * 0 if absent, -1 (error set) if malformed. */
int env_int(const char *name, int lo, int hi, int *v)
{
    const char *s = std::getenv(name);
    if (!s || !*s) return 0;
    char *end = nullptr;
    long x = std::strtol(s, &end, 10);
    if (*end || x < lo || x > hi) {
        gseg__err(GSEG_ERR_ARG, "environment %s=%s: expected an integer %d..%d", name, s, lo, hi);
        return -1;
    }
    *v = (int)x;
    return 1;
}

/* c10d logs a failed connection (with the exception's whole backtrace)
 * before throwing it; gseg reports the exception itself, in one line, so
 * the log is hushed meanwhile: glog's where c10 logs through glog (Debian's
 * libtorch), c10's own log level otherwise (the pip wheel's libtorch 2.x,
 * where c10d also checks it before logging). */
class QuietLog {
  public:
#ifdef GSEG_GLOG
    QuietLog() : saved_(FLAGS_minloglevel) { FLAGS_minloglevel = google::GLOG_FATAL; }
    ~QuietLog() { FLAGS_minloglevel = saved_; }
#elif !defined(C10_USE_GLOG)
    QuietLog() : saved_(FLAGS_caffe2_log_level) { FLAGS_caffe2_log_level = c10::GLOG_FATAL; }
    ~QuietLog() { FLAGS_caffe2_log_level = saved_; }
#else
    QuietLog() : saved_(0) {}
#endif
    QuietLog(const QuietLog &) = delete;
    QuietLog &operator=(const QuietLog &) = delete;

  private:
    int saved_;
};

} /* namespace */

struct gseg__dist {
    int rank = 0, world = 1;
#ifdef GSEG_TORCH_DIST
    c10::intrusive_ptr<c10d::Store> store;
#ifdef GSEG_NCCL
    c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
    c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
};

extern "C" {

gseg_status gseg__dist_env_read(gseg__dist_env *e)
{
    std::memset(e, 0, sizeof *e);
    e->world = 1;
    e->port = 29500; /* torchrun's default */
    e->source = "none";
    int r;
    if ((r = env_int("WORLD_SIZE", 1, 1 << 20, &e->world)) != 0) {
        if (r < 0) return GSEG_ERR_ARG;
        e->source = "torchrun";
        if (env_int("RANK", 0, e->world - 1, &e->rank) <= 0)
            return gseg__err(GSEG_ERR_ARG, "WORLD_SIZE=%d but RANK is missing or not 0..%d",
                             e->world, e->world - 1);
        if (env_int("LOCAL_RANK", 0, e->world - 1, &e->local_rank) < 0) return GSEG_ERR_ARG;
    } else if ((r = env_int("SLURM_STEP_NUM_TASKS", 1, 1 << 20, &e->world)) != 0) {
        /* Inside an srun step (a batch script alone has SLURM_NTASKS but
         * runs one process: it must not wait for the others). */
        if (r < 0) return GSEG_ERR_ARG;
        e->source = "slurm";
        if (env_int("SLURM_PROCID", 0, e->world - 1, &e->rank) <= 0)
            return gseg__err(GSEG_ERR_ARG, "SLURM_STEP_NUM_TASKS=%d but SLURM_PROCID is missing",
                             e->world);
        if (env_int("SLURM_LOCALID", 0, e->world - 1, &e->local_rank) < 0) return GSEG_ERR_ARG;
    }
    if (env_int("MASTER_PORT", 1, 65535, &e->port) < 0) return GSEG_ERR_ARG;
    const char *addr = std::getenv("MASTER_ADDR");
    if (addr && *addr) {
        std::snprintf(e->addr, sizeof e->addr, "%s", addr);
    } else {
        /* One node (torchrun sets MASTER_ADDR itself): rank 0 is local. */
        int nodes = 1;
        if (env_int("SLURM_STEP_NUM_NODES", 1, 1 << 20, &nodes) < 0) return GSEG_ERR_ARG;
        if (e->world > 1 && nodes > 1 && !std::strcmp(e->source, "slurm"))
            return gseg__err(GSEG_ERR_ARG,
                             "training on %d nodes: set MASTER_ADDR to rank 0's host, e.g. export "
                             "MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)",
                             nodes);
        std::snprintf(e->addr, sizeof e->addr, "127.0.0.1");
    }
    return GSEG_OK;
}

int gseg__dist_available(void)
{
#ifdef GSEG_TORCH_DIST
    return 1;
#else
    return 0;
#endif
}

gseg_status gseg__dist_new(const gseg__dist_env *e, int cuda, double timeout_s, gseg__dist **out)
{
    *out = nullptr;
#ifndef GSEG_TORCH_DIST
    (void)cuda;
    (void)timeout_s;
    return gseg__err(GSEG_ERR_UNSUPPORTED,
                     "%s asks for %d processes, but this gseg was built without "
                     "torch.distributed (rebuild with Gloo's headers: apt-get install libgloo-dev)",
                     e->source, e->world);
#else
    auto timeout = std::chrono::milliseconds((int64_t)(timeout_s * 1000));
    auto d = std::make_unique<gseg__dist>();
    d->rank = e->rank;
    d->world = e->world;
    try {
        QuietLog quiet;
        c10d::TCPStoreOptions so;
        so.port = (std::uint16_t)e->port;
        so.isServer = e->rank == 0;
        so.numWorkers = (std::size_t)e->world;
        so.waitWorkers = true;
        so.timeout = timeout;
        auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(e->addr), so);
        d->store = c10::make_intrusive<c10d::PrefixStore>("gseg", tcp);
    }
    catch (const std::exception &x) {
        std::string m = x.what();
        m.resize(std::min(m.find('\n'), m.size()));
        return gseg__err(GSEG_ERR_IO, "rank %d of %d: cannot meet the others at %s:%d (%s)",
                         e->rank, e->world, e->addr, e->port, m.c_str());
    }
    try {
        if (cuda) {
#ifdef GSEG_NCCL
            auto o = c10d::ProcessGroupNCCL::Options::create();
            o->timeout = timeout;
            d->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(d->store, e->rank, e->world, o);
#else
            return gseg__err(GSEG_ERR_UNSUPPORTED,
                             "multi-process CUDA training needs a libtorch with NCCL "
                             "(USE_C10D_NCCL); this one has none");
#endif
        } else {
            auto o = c10d::ProcessGroupGloo::Options::create(timeout);
            const char *ifname = std::getenv("GLOO_SOCKET_IFNAME");
            std::string addr = e->addr;
            if (ifname && *ifname)
                o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
            else if (addr == "127.0.0.1" || addr == "localhost")
                o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
            else
                o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
            d->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(d->store, e->rank, e->world, o);
        }
    }
    catch (const std::exception &x) {
        std::string m = x.what();
        m.resize(std::min(m.find('\n'), m.size()));
        return gseg__err(GSEG_ERR_IO, "rank %d of %d: cannot form the process group (%s)",
                         e->rank, e->world, m.c_str());
    }
    *out = d.release();
    return GSEG_OK;
#endif
}

void gseg__dist_free(gseg__dist *d) { delete d; }
int gseg__dist_rank(const gseg__dist *d) { return d ? d->rank : 0; }
int gseg__dist_world(const gseg__dist *d) { return d ? d->world : 1; }

gseg_status gseg__dist_allreduce_f64(gseg__dist *d, double *buf, int n)
try {
    if (!d || d->world == 1) return GSEG_OK;
    at::Tensor t = torch::from_blob(buf, {n}, torch::kDouble).clone();
#ifdef GSEG_NCCL
    if (d->nccl) t = t.to(torch::kCUDA);
#endif
    gseg__dist_allreduce_sum(d, t);
    t = t.to(torch::kCPU);
    std::memcpy(buf, t.data_ptr<double>(), (size_t)n * sizeof(double));
    return GSEG_OK;
}
catch (const std::exception &x) {
    std::string m = x.what();
    m.resize(std::min(m.find('\n'), m.size()));
    return gseg__err(GSEG_ERR_IO, "rank %d: all-reduce failed (%s)", d->rank, m.c_str());
}

} /* extern "C" */

void gseg__dist_allreduce_sum(gseg__dist *d, at::Tensor &t)
{
    if (!d || d->world == 1) return;
#ifdef GSEG_TORCH_DIST
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
#ifdef GSEG_NCCL
    if (d->nccl) {
        d->nccl->allreduce(v, o)->wait();
        return;
    }
#endif
    d->gloo->allreduce(v, o)->wait();
#else
    (void)t;
#endif
}

void gseg__dist_broadcast(gseg__dist *d, std::vector<at::Tensor> &t, int root)
{
    if (!d || d->world == 1 || t.empty()) return;
#ifdef GSEG_TORCH_DIST
    /* One flat buffer: one message. */
    std::vector<at::Tensor> flts;
    for (auto &x : t) flts.push_back(x.reshape({-1}));
    at::Tensor flat = torch::cat(flts);
    std::vector<at::Tensor> v{flat};
    c10d::BroadcastOptions o;
    o.rootRank = root;
#ifdef GSEG_NCCL
    if (d->nccl) d->nccl->broadcast(v, o)->wait();
    else
#endif
        d->gloo->broadcast(v, o)->wait();
    int64_t off = 0;
    for (auto &x : t) {
        x.copy_(flat.narrow(0, off, x.numel()).view_as(x));
        off += x.numel();
    }
#else
    (void)root;
#endif
}
