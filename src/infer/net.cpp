/*
 * net.cpp — the libtorch shim: a U-Net with a torchvision ResNet encoder,
 * laid out as segmentation-models-pytorch's Unet so that state-dict keys
 * match. The only C++ in libgseg; see net.h for the contract.
 *
 * Layout (SMP names):
 *   encoder.{conv1,bn1}                 7x7/2 stem, then 3x3/2 max pool
 *   encoder.layer{1..4}.N.{conv,bn}{1,2[,3]}[.downsample.{0,1}]
 *   decoder.blocks.{0..4}.conv{1,2}.{0 conv, 1 bn, 2 relu}
 *   segmentation_head.0                 3x3 conv to the output logits
 * Decoder block i: nearest 2x upsampling, concatenation with the encoder
 * feature of the same scale (none for the last block), two conv-BN-ReLU.
 *
 * Inference: eval mode; optionally BatchNorm folded into the preceding
 * convolution (w' = w * g/sqrt(v+eps), b' = b - m * g/sqrt(v+eps)); weights
 * and activations channels-last; bf16 (CPU) or fp16/bf16 (CUDA) by casting
 * the folded weights and the input, which is what autocast would do for
 * this network (every op is a convolution, ReLU, add, pool, upsample or
 * concatenation), without relying on autocast's API, which changed between
 * libtorch 1.13 and 2.x. The segmentation head runs in fp32.
 */
#include "net.h"
#include "alloc.h"
#include "dist.h"

/* libtorch's headers trip -Wunused-parameter; they are not ours to fix. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>
#pragma GCC diagnostic pop

#include <cpuid.h>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <streambuf>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include "internal.h"
}
#include <cpl_conv.h>
#include <cpl_string.h>

namespace nn = torch::nn;
using torch::Tensor;

namespace {

/* ---- architecture ------------------------------------------------------ */

struct EncoderSpec {
    const char *name;
    bool bottleneck;
    int blocks[4];
};

const EncoderSpec kEncoders[] = {
    {"resnet18", false, {2, 2, 2, 2}},  {"resnet34", false, {3, 4, 6, 3}},
    {"resnet50", true, {3, 4, 6, 3}},   {"resnet101", true, {3, 4, 23, 3}},
    {"resnet152", true, {3, 8, 36, 3}},
};

const EncoderSpec *find_encoder(const char *name)
{
    for (const auto &e : kEncoders)
        if (name && std::strcmp(e.name, name) == 0) return &e;
    return nullptr;
}

const int kDecoderChannels[5] = {256, 128, 64, 32, 16};

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                bool bias)
{
    return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(bias));
}

bool cpu_autocast_on()
{
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    return at::autocast::is_autocast_enabled(c10::DeviceType::CPU);
#else
    return at::autocast::is_cpu_enabled();
#endif
}

/* A 2-D convolution. libtorch 1.13 sends stride-1 1x1 fp32 convolutions of
 * small batches to its slow reference kernel when it runs on one thread (a
 * heuristic of its backend choice): 20x slower on a resnet50 forward. fp32
 * CPU convolutions therefore go to oneDNN directly, as they do anyway on
 * more threads (same kernel, same results). Under autocast the dispatcher's
 * conv2d is kept, since that is where autocast casts. */
Tensor conv2d(const Tensor &x, const Tensor &w, const Tensor &b, int64_t stride, int64_t pad)
{
    if (x.is_cpu() && x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat &&
        at::hasMKLDNN() && at::globalContext().userEnabledMkldnn() && !cpu_autocast_on())
        return at::mkldnn_convolution(x, w, b, {pad, pad}, {stride, stride}, {1, 1}, 1);
    return torch::conv2d(x, w, b, stride, pad);
}

/* A convolution and the BatchNorm after it; `w`, `b` hold the folded
 * weights once prepared. */
struct ConvBn {
    nn::Conv2d c{nullptr};
    nn::BatchNorm2d bn{nullptr};
    Tensor w, b;
    int64_t stride = 1, pad = 0;

    Tensor operator()(const Tensor &x, bool folded)
    {
        if (folded) return conv2d(x, w, b, stride, pad);
        return bn->forward(conv2d(x, c->weight, Tensor(), stride, pad));
    }
};

struct Block : nn::Module {
    bool bottleneck;
    std::vector<ConvBn> cbs; /* conv1/bn1, conv2/bn2[, conv3/bn3] */
    bool has_down = false;
    ConvBn down;

    Block(int64_t in, int64_t planes, int64_t stride, bool bneck) : bottleneck(bneck)
    {
        int64_t exp = bneck ? 4 : 1, out = planes * exp;
        auto add = [&](int idx, int64_t ci, int64_t co, int64_t k, int64_t s) {
            ConvBn cb;
            cb.c = register_module("conv" + std::to_string(idx), conv(ci, co, k, s, k / 2, false));
            cb.bn = register_module("bn" + std::to_string(idx), nn::BatchNorm2d(co));
            cb.stride = s;
            cb.pad = k / 2;
            cbs.push_back(cb);
        };
        if (bneck) {
            add(1, in, planes, 1, 1);
            add(2, planes, planes, 3, stride);
            add(3, planes, out, 1, 1);
        } else {
            add(1, in, planes, 3, stride);
            add(2, planes, planes, 3, 1);
        }
        if (stride != 1 || in != out) {
            has_down = true;
            nn::Sequential seq;
            down.c = conv(in, out, 1, stride, 0, false);
            down.bn = nn::BatchNorm2d(out);
            seq->push_back(down.c);
            seq->push_back(down.bn);
            down.stride = stride;
            register_module("downsample", seq);
        }
    }

    Tensor forward(const Tensor &x, bool folded)
    {
        Tensor y = x;
        for (size_t i = 0; i < cbs.size(); i++) {
            y = cbs[i](y, folded);
            if (i + 1 < cbs.size()) y.relu_();
        }
        Tensor id = has_down ? down(x, folded) : x;
        y.add_(id);
        return y.relu_();
    }
};

struct Encoder : nn::Module {
    ConvBn stem;
    std::vector<std::vector<std::shared_ptr<Block>>> layers;

    Encoder(const EncoderSpec &spec, int64_t in_ch)
    {
        stem.c = register_module("conv1", conv(in_ch, 64, 7, 2, 3, false));
        stem.bn = register_module("bn1", nn::BatchNorm2d(64));
        stem.stride = 2;
        stem.pad = 3;
        int64_t in = 64, exp = spec.bottleneck ? 4 : 1;
        for (int l = 0; l < 4; l++) {
            int64_t planes = 64 << l;
            nn::Sequential seq;
            std::vector<std::shared_ptr<Block>> blocks;
            for (int b = 0; b < spec.blocks[l]; b++) {
                auto blk = std::make_shared<Block>(in, planes, (b == 0 && l > 0) ? 2 : 1,
                                                   spec.bottleneck);
                seq->push_back(blk);
                blocks.push_back(blk);
                in = planes * exp;
            }
            register_module("layer" + std::to_string(l + 1), seq);
            layers.push_back(blocks);
        }
    }

    /* Features f1..f5 (stem, layer1..4) as SMP's ResNetEncoder returns them
     * after the identity; stops after `upto`. */
    std::vector<Tensor> forward(Tensor x, bool folded, int upto = 5)
    {
        std::vector<Tensor> f;
        Tensor y = stem(x, folded);
        x.reset(); /* the input, once used */
        y.relu_();
        f.push_back(y);
        if (upto == 1) return f;
        y = torch::max_pool2d(y, 3, 2, 1);
        for (int l = 0; l < 4 && (int)f.size() < upto; l++) {
            for (auto &b : layers[l]) y = b->forward(y, folded);
            f.push_back(y);
        }
        return f;
    }
};

struct DecoderBlock : nn::Module {
    ConvBn c1, c2;

    DecoderBlock(int64_t in, int64_t skip, int64_t out)
    {
        auto make = [&](const char *name, int64_t ci, ConvBn &cb) {
            nn::Sequential seq;
            cb.c = conv(ci, out, 3, 1, 1, false);
            cb.bn = nn::BatchNorm2d(out);
            seq->push_back(cb.c);
            seq->push_back(cb.bn);
            seq->push_back(nn::ReLU(nn::ReLUOptions(true)));
            cb.pad = 1;
            register_module(name, seq);
        };
        make("conv1", in + skip, c1);
        make("conv2", out, c2);
    }

    /* x and skip (undefined for the last block) are taken, and let go as
     * soon as they have been used. */
    Tensor forward(Tensor x, Tensor skip, bool folded)
    {
        Tensor y = torch::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2});
        x.reset();
        if (skip.defined()) {
            y = torch::cat({y, skip}, 1);
            skip.reset();
        }
        y = c1(y, folded);
        y.relu_();
        y = c2(y, folded);
        return y.relu_();
    }
};

struct Unet : nn::Module {
    std::shared_ptr<Encoder> encoder;
    std::vector<std::shared_ptr<DecoderBlock>> blocks;
    nn::Conv2d head{nullptr};

    Unet(const EncoderSpec &spec, int64_t in_ch, int64_t outputs)
    {
        encoder = register_module("encoder", std::make_shared<Encoder>(spec, in_ch));
        int64_t e = spec.bottleneck ? 4 : 1;
        /* Encoder channels from deep to shallow: f5 f4 f3 f2 f1. */
        int64_t feat[5] = {512 * e, 256 * e, 128 * e, 64 * e, 64};
        auto decoder = register_module("decoder", std::make_shared<nn::Module>());
        nn::ModuleList list;
        int64_t in = feat[0];
        for (int i = 0; i < 5; i++) {
            int64_t skip = i < 4 ? feat[i + 1] : 0;
            auto b = std::make_shared<DecoderBlock>(in, skip, kDecoderChannels[i]);
            list->push_back(b);
            blocks.push_back(b);
            in = kDecoderChannels[i];
        }
        decoder->register_module("blocks", list);
        nn::Sequential seg;
        head = conv(kDecoderChannels[4], outputs, 3, 1, 1, true);
        seg->push_back(head);
        register_module("segmentation_head", seg);
    }

    /* Logits; the head runs in fp32 whatever the trunk's dtype. Each
     * encoder feature is let go once its decoder block has used it, so at
     * inference (no autograd to keep them) the deep features are gone before
     * the full-resolution blocks run. Measured with gseg-predict, batch of
     * four 256^2 tiles: peak RSS 702 -> 623 MB in fp32. */
    Tensor forward(Tensor x, bool folded)
    {
        auto f = encoder->forward(std::move(x), folded);
        Tensor y = std::move(f[4]);
        for (int i = 0; i < 5; i++)
            y = blocks[i]->forward(std::move(y), i < 4 ? std::move(f[3 - i]) : Tensor(), folded);
        if (y.scalar_type() != torch::kFloat) y = y.to(torch::kFloat);
        return conv2d(y, head->weight, head->bias, 1, 1);
    }

    std::vector<ConvBn *> conv_bns()
    {
        std::vector<ConvBn *> v{&encoder->stem};
        for (auto &layer : encoder->layers)
            for (auto &b : layer) {
                for (auto &cb : b->cbs) v.push_back(&cb);
                if (b->has_down) v.push_back(&b->down);
            }
        for (auto &b : blocks) {
            v.push_back(&b->c1);
            v.push_back(&b->c2);
        }
        return v;
    }
};

/* PyTorch's initialisation: torchvision's ResNet (kaiming normal, fan_out)
 * for the encoder, SMP's initialize_decoder / initialize_head for the rest. */
void initialise(Unet &net)
{
    torch::NoGradGuard ng;
    for (auto &kv : net.named_modules("", false)) {
        const std::string &name = kv.key();
        nn::Module &m = *kv.value();
        bool enc = name.rfind("encoder", 0) == 0;
        if (auto *c = m.as<nn::Conv2d>()) {
            Tensor w = c->weight, b = c->bias;
            if (name.rfind("segmentation_head", 0) == 0) {
                nn::init::xavier_uniform_(w);
            } else if (enc) {
                nn::init::kaiming_normal_(w, 0, torch::kFanOut, torch::kReLU);
            } else {
                nn::init::kaiming_uniform_(w, 0, torch::kFanIn, torch::kReLU);
            }
            if (b.defined()) nn::init::zeros_(b);
        } else if (auto *bn = m.as<nn::BatchNorm2d>()) {
            Tensor w = bn->weight, b = bn->bias;
            nn::init::ones_(w);
            nn::init::zeros_(b);
        }
    }
}

} /* namespace */

/* ---- the C object ------------------------------------------------------ */

struct gseg__net {
    std::shared_ptr<Unet> model;
    std::vector<std::string> names;
    std::vector<Tensor> tensors; /* aliases of the module's tensors */
    torch::Device device{torch::kCPU};
    gseg_precision precision = GSEG_PRECISION_FP32;
    torch::ScalarType dtype = torch::kFloat;
    bool prepared = false, fold = false, folded_valid = false;
    int outputs = 1, in_channels = 0;
    std::unique_ptr<torch::optim::AdamW> opt;
    gseg_precision train_precision = GSEG_PRECISION_FP32; /* autocast dtype */
    gseg__dist *dist = nullptr; /* borrowed: data parallel over its ranks */
    bool channels_last = false; /* training layout of weights and inputs */
    int tta = 0;                /* 1: mean over 4 flips at inference */
    bool released = false;      /* unfolded weights freed: inference only */
    bool release_on_fold = false; /* free each unfolded layer as it is folded */
    gseg::ForwardArena *arena = nullptr; /* CPU inference's activations (alloc.h) */
    bool arena_tried = false;

    ~gseg__net() { gseg::drop_arena(arena); }
};

namespace {

gseg_status fail(gseg_status s, const char *what, const char *msg)
{
    std::string m = msg ? msg : "unknown error";
    /* libtorch messages can span lines (source excerpts); keep the first. */
    size_t nl = m.find('\n');
    if (nl != std::string::npos) m.resize(nl);
    return gseg__err(s, "%s: %s", what, m.c_str());
}

#define SHIM_CATCH(where)                                                        \
    catch (const c10::Error &e) {                                               \
        return fail(GSEG_ERR_INTERNAL, where, e.what_without_backtrace());        \
    }                                                                           \
    catch (const std::bad_alloc &) {                                            \
        return gseg__err(GSEG_ERR_NOMEM, "%s: out of memory", where);            \
    }                                                                           \
    catch (const std::exception &e) {                                           \
        return fail(GSEG_ERR_INTERNAL, where, e.what());                          \
    }                                                                           \
    catch (...) {                                                               \
        return fail(GSEG_ERR_INTERNAL, where, "unknown C++ exception");          \
    }

/* Frees a layer's unfolded weights (they are aliased in net->tensors, so
 * the storage goes). */
void release_layer(ConvBn *cb)
{
    Tensor none = torch::empty({0});
    cb->c->weight.set_data(none);
    cb->bn->weight.set_data(none);
    cb->bn->bias.set_data(none);
    cb->bn->running_mean.set_data(none);
    cb->bn->running_var.set_data(none);
}

/* Folds every BatchNorm into its convolution. With release_on_fold each
 * layer's unfolded weights go as soon as it is folded, so the two copies of
 * the network never coexist (peak memory: one copy plus one layer). */
void fold_all(gseg__net *net)
{
    torch::NoGradGuard ng;
    const auto mf = torch::MemoryFormat::ChannelsLast;
    for (ConvBn *cb : net->model->conv_bns()) {
        auto &bn = cb->bn;
        Tensor scale = bn->weight / torch::sqrt(bn->running_var + bn->options.eps());
        Tensor w = cb->c->weight * scale.view({-1, 1, 1, 1});
        Tensor b = bn->bias - bn->running_mean * scale;
        cb->w = w.to(net->dtype).contiguous(mf);
        cb->b = b.to(net->dtype);
        if (net->release_on_fold) release_layer(cb);
    }
    net->folded_valid = true;
    if (net->release_on_fold) net->released = true;
}

/* After gseg__net_release_unfolded only the folded inference runs. */
void check_not_released(const gseg__net *net)
{
    TORCH_CHECK(!net->released, "the model's weights were released after preparing it for "
                                "inference only");
}

/* Drops the gradients instead of zeroing them (PyTorch's
 * zero_grad(set_to_none=True), its default since 2.0): no pass to clear
 * them, and the next backward hands its gradients over instead of adding
 * them into zeros. The optimiser skips parameters without one. */
void clear_grads(gseg__net *net)
{
    for (auto &p : net->model->parameters()) p.mutable_grad().reset();
}

void drop_folded(gseg__net *net)
{
    for (ConvBn *cb : net->model->conv_bns()) {
        cb->w = Tensor();
        cb->b = Tensor();
    }
    net->folded_valid = false;
}

Tensor from_host(gseg__net *net, const float *in, int n, int c, int h, int w)
{
    Tensor x = torch::from_blob(const_cast<float *>(in), {n, c, h, w}, torch::kFloat);
    return x.to(net->device, torch::kFloat, false, true);
}

/* Pads x (N,C,H,W) by edge replication to multiples of 32. */
Tensor pad32(const Tensor &x)
{
    int64_t h = x.size(2), w = x.size(3);
    int64_t ph = (32 - h % 32) % 32, pw = (32 - w % 32) % 32;
    if (!ph && !pw) return x;
    namespace F = torch::nn::functional;
    return F::pad(x, F::PadFuncOptions({0, pw, 0, ph}).mode(torch::kReplicate));
}

/* The network's logits for host input, cropped to h x w, on the device. */
/* Autocast for the training forward, as torch.autocast does in Python:
 * matrix ops in bf16/fp16, weights kept in fp32. The API moved in libtorch
 * 2.4 (per-device calls); both spellings are behind this guard. */
class Autocast {
  public:
    Autocast(c10::DeviceType dev, gseg_precision p) : dev_(dev), on_(p != GSEG_PRECISION_FP32)
    {
        if (!on_) return;
        auto dt = p == GSEG_PRECISION_BF16 ? at::kBFloat16 : at::kHalf;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
        at::autocast::set_autocast_dtype(dev_, dt);
        at::autocast::set_autocast_enabled(dev_, true);
#else
        if (dev_ == c10::DeviceType::CUDA) {
            at::autocast::set_autocast_gpu_dtype(dt);
            at::autocast::set_enabled(true);
        } else {
            at::autocast::set_autocast_cpu_dtype(dt);
            at::autocast::set_cpu_enabled(true);
        }
#endif
        at::autocast::increment_nesting();
    }
    ~Autocast()
    {
        if (!on_) return;
        if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
        at::autocast::set_autocast_enabled(dev_, false);
#else
        if (dev_ == c10::DeviceType::CUDA) at::autocast::set_enabled(false);
        else at::autocast::set_cpu_enabled(false);
#endif
    }
    Autocast(const Autocast &) = delete;
    Autocast &operator=(const Autocast &) = delete;

  private:
    c10::DeviceType dev_;
    bool on_;
};

/* The network on a padded input, in the layout and precision it runs in. */
Tensor run_padded(gseg__net *net, Tensor x)
{
    bool folded = net->fold && net->folded_valid;
    if (folded) x = x.to(net->dtype).contiguous(torch::MemoryFormat::ChannelsLast);
    else if (net->channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    return net->model->forward(std::move(x), folded);
}

Tensor logits(gseg__net *net, const float *in, int n, int c, int h, int w)
{
    /* Held in x, not as a temporary of the call, so that the host copy goes
     * once converted instead of living through the whole forward. */
    Tensor x = pad32(from_host(net, in, n, c, h, w));
    Tensor y = run_padded(net, std::move(x));
    return y.narrow(2, 0, h).narrow(3, 0, w);
}

Tensor activate(const gseg__net *net, const Tensor &y)
{
    return net->outputs == 1 ? torch::sigmoid(y) : torch::softmax(y, 1);
}

/* Test-time augmentation: the mean of the outputs (probabilities, or
 * logits when asked for) of the input as is and flipped left-right,
 * up-down and both, each flipped back. Flipping the padded input keeps the
 * padding off the scene's pixels' positions once flipped back. */
Tensor flips_mean(gseg__net *net, const float *in, int n, int c, int h, int w, bool want_logits)
{
    Tensor x = pad32(from_host(net, in, n, c, h, w));
    Tensor sum;
    const std::vector<std::vector<int64_t>> flips = {{}, {3}, {2}, {2, 3}};
    for (const auto &d : flips) {
        Tensor y = run_padded(net, d.empty() ? x : x.flip(d));
        if (!want_logits) y = activate(net, y);
        y = y.to(torch::kFloat);
        if (!d.empty()) y = y.flip(d);
        sum = sum.defined() ? sum + y : y;
    }
    return (sum / 4.0).narrow(2, 0, h).narrow(3, 0, w);
}

void check_input(const gseg__net *net, int n, int c, int h, int w)
{
    TORCH_CHECK(n >= 1 && h >= 1 && w >= 1, "empty batch (", n, "x", c, "x", h, "x", w, ")");
    TORCH_CHECK(c == net->in_channels, "the model takes ", net->in_channels,
                " bands but the input has ", c);
}

} /* namespace */

extern "C" {

int gseg__net_encoder_known(const char *encoder) { return find_encoder(encoder) != nullptr; }

const char *gseg__net_encoder_guess(int bottleneck, const int blocks[4])
{
    for (const auto &e : kEncoders)
        if (e.bottleneck == (bottleneck != 0) && std::equal(blocks, blocks + 4, e.blocks))
            return e.name;
    return nullptr;
}

gseg_status gseg__net_new(const char *encoder, int in_channels, int outputs,
                          uint64_t seed, gseg__net **out)
{
    *out = nullptr;
    const EncoderSpec *spec = find_encoder(encoder);
    if (!spec)
        return gseg__err(GSEG_ERR_ARG,
                         "unknown encoder '%s' (resnet18, resnet34, resnet50, resnet101, resnet152)",
                         encoder ? encoder : "");
    if (in_channels < 1 || in_channels > 4096 || outputs < 1 || outputs > 4096)
        return gseg__err(GSEG_ERR_ARG, "network: %d input bands, %d outputs: out of range",
                         in_channels, outputs);
    gseg__net *net = nullptr;
    try {
        net = new gseg__net();
        torch::manual_seed(seed);
        net->model = std::make_shared<Unet>(*spec, in_channels, outputs);
        initialise(*net->model);
        net->in_channels = in_channels;
        net->outputs = outputs;
        for (auto &kv : net->model->named_parameters()) {
            net->names.push_back(kv.key());
            net->tensors.push_back(kv.value());
        }
        for (auto &kv : net->model->named_buffers()) {
            net->names.push_back(kv.key());
            net->tensors.push_back(kv.value());
        }
        *out = net;
        return GSEG_OK;
    }
    catch (const std::bad_alloc &) {
        delete net;
        return gseg__err(GSEG_ERR_NOMEM, "network: out of memory");
    }
    catch (const c10::Error &e) {
        delete net;
        return fail(GSEG_ERR_INTERNAL, "network", e.what_without_backtrace());
    }
    catch (...) {
        delete net;
        return fail(GSEG_ERR_INTERNAL, "network", "unknown C++ exception");
    }
}

void gseg__net_free(gseg__net *net)
{
    try {
        delete net;
    }
    catch (...) {
    }
}

int gseg__net_tensor_count(const gseg__net *net) { return (int)net->names.size(); }
const char *gseg__net_tensor_name(const gseg__net *net, int i)
{
    return i >= 0 && i < (int)net->names.size() ? net->names[i].c_str() : nullptr;
}
int gseg__net_tensor_find(const gseg__net *net, const char *name)
{
    for (size_t i = 0; i < net->names.size(); i++)
        if (net->names[i] == name) return (int)i;
    return -1;
}
int gseg__net_tensor_ndim(const gseg__net *net, int i) { return (int)net->tensors[i].dim(); }
int64_t gseg__net_tensor_dim(const gseg__net *net, int i, int d) { return net->tensors[i].size(d); }
int gseg__net_tensor_is_int(const gseg__net *net, int i)
{
    return net->tensors[i].scalar_type() == torch::kLong;
}
int64_t gseg__net_tensor_numel(const gseg__net *net, int i) { return net->tensors[i].numel(); }

int64_t gseg__net_param_count(const gseg__net *net)
{
    int64_t n = 0;
    for (auto &p : net->model->parameters()) n += p.numel();
    return n;
}

uint64_t gseg__net_digest(const gseg__net *net)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const Tensor &t0 : net->tensors) {
        Tensor t = t0.detach().to(torch::kCPU).contiguous();
        const unsigned char *b = static_cast<const unsigned char *>(t.data_ptr());
        for (size_t k = 0, n = (size_t)t.numel() * t.element_size(); k < n; k++)
            h = (h ^ b[k]) * 0x100000001b3ull;
    }
    return h;
}

gseg_status gseg__net_tensor_get(gseg__net *net, int i, void *dst, int64_t n)
try {
    check_not_released(net);
    Tensor &t = net->tensors.at(i);
    TORCH_CHECK(n == t.numel(), "tensor ", net->names[i], ": ", n, " values asked, ", t.numel(), " held");
    Tensor c = t.detach().to(torch::kCPU).contiguous();
    std::memcpy(dst, c.data_ptr(), (size_t)n * c.element_size());
    return GSEG_OK;
}
SHIM_CATCH("network: reading a tensor")

gseg_status gseg__net_tensor_set(gseg__net *net, int i, const void *src, int64_t n)
try {
    check_not_released(net);
    Tensor &t = net->tensors.at(i);
    TORCH_CHECK(n == t.numel(), "tensor ", net->names[i], ": ", n, " values given, ", t.numel(), " expected");
    torch::NoGradGuard ng;
    Tensor s = torch::from_blob(const_cast<void *>(src), t.sizes(), t.scalar_type());
    t.copy_(s);
    net->folded_valid = false;
    return GSEG_OK;
}
SHIM_CATCH("network: setting a tensor")

int gseg__cpu_has_bf16(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    bool amx_bf16 = (d >> 22) & 1;
    bool avx512f = (b >> 16) & 1;
    unsigned max_sub = a;
    bool avx512_bf16 = false;
    if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) avx512_bf16 = (a >> 5) & 1;
    /* The OS must also save the AVX-512 state (XCR0 bits 5-7). */
    if (avx512f || amx_bf16) {
        unsigned ecx1 = 0, t1, t2, t3;
        __get_cpuid(1, &t1, &t2, &ecx1, &t3);
        if (!((ecx1 >> 27) & 1)) return 0; /* OSXSAVE */
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        if ((lo & 0xe6) != 0xe6) return 0;
    }
    return (avx512f && avx512_bf16) || amx_bf16;
}

gseg_status gseg__net_prepare(gseg__net *net, const char *device, gseg_precision precision,
                              int threads, int fold_bn)
try {
    check_not_released(net);
    std::string dev = device && *device ? device : "cpu";
    gseg_status cst = gseg_device_check(dev.c_str());
    if (cst != GSEG_OK) return cst;
    torch::Device d(torch::kCPU);
    if (dev == "cpu") {
        d = torch::Device(torch::kCPU);
    } else if (dev.rfind("cuda", 0) == 0) {
#ifndef GSEG_TORCH_CUDA
        return gseg__err(GSEG_ERR_UNSUPPORTED,
                         "--device %s: this gseg is built against a CPU-only libtorch; "
                         "rebuild against a CUDA libtorch (meson -Dtorch_prefix=..., see "
                         "docs/building.md) or use --device cpu",
                         dev.c_str());
#else
        try {
            d = torch::Device(dev);
        }
        catch (const c10::Error &) {
            return gseg__err(GSEG_ERR_ARG, "--device %s: expected cpu, cuda or cuda:N", dev.c_str());
        }
        int64_t count = (int64_t)torch::cuda::device_count();
        if (count == 0)
            return gseg__err(GSEG_ERR_UNSUPPORTED,
                             "--device %s: no CUDA device is visible (driver missing, or "
                             "CUDA_VISIBLE_DEVICES empty); use --device cpu",
                             dev.c_str());
        if (d.has_index() && d.index() >= count)
            return gseg__err(GSEG_ERR_ARG, "--device %s: only %lld CUDA device(s) visible",
                             dev.c_str(), (long long)count);
        at::globalContext().setBenchmarkCuDNN(true);
#endif
    }

    if (precision == GSEG_PRECISION_AUTO)
        precision = d.is_cuda() ? GSEG_PRECISION_FP16
                                : (gseg__cpu_has_bf16() ? GSEG_PRECISION_BF16 : GSEG_PRECISION_FP32);
    if (precision == GSEG_PRECISION_FP16 && d.is_cpu())
        return gseg__err(GSEG_ERR_UNSUPPORTED,
                         "--precision fp16 needs a CUDA device; on CPU use bf16 or fp32");
    if (!fold_bn && precision != GSEG_PRECISION_FP32)
        return gseg__err(GSEG_ERR_ARG, "reduced precision needs folded BatchNorm");
    net->precision = precision;
    net->dtype = precision == GSEG_PRECISION_BF16   ? torch::kBFloat16
                 : precision == GSEG_PRECISION_FP16 ? torch::kHalf
                                                    : torch::kFloat;
    if (threads <= 0) threads = gseg__cpu_count();
    if (d.is_cpu()) torch::set_num_threads(threads);

    net->opt.reset();
    net->model->to(d);
    net->device = d;
    net->model->eval();
    net->fold = fold_bn != 0;
    drop_folded(net);
    if (net->fold) fold_all(net);
    net->prepared = true;
    return GSEG_OK;
}
SHIM_CATCH("network: preparing")

gseg_precision gseg__net_precision(const gseg__net *net) { return net->precision; }

int gseg__net_cpu_threads(const gseg__net *net)
{
    if (!net->prepared) return -1;
    return net->device.is_cpu() ? torch::get_num_threads() : 0;
}

gseg_status gseg__net_forward(gseg__net *net, const float *in, int n, int c, int h, int w,
                              float *out, int want_logits)
try {
    if (!net->prepared || (net->fold && !net->folded_valid) || net->model->is_training()) {
        if (!net->prepared) {
            gseg_status st = gseg__net_prepare(net, "cpu", GSEG_PRECISION_AUTO, 0, 1);
            if (st != GSEG_OK) return st;
        } else {
            net->model->eval();
            if (net->fold) fold_all(net);
        }
    }
    check_input(net, n, c, h, w);
    if (!net->arena_tried && net->device.is_cpu()) {
        net->arena = gseg::new_arena();
        net->arena_tried = true;
    }
    /* Every tensor of the call, y included, is gone before the scope ends. */
    gseg::ArenaScope scope(net->arena, {n, c, h, w, net->tta, want_logits != 0,
                                        (int64_t)net->precision});
    torch::InferenceMode guard;
    Tensor y;
    if (net->tta) {
        y = flips_mean(net, in, n, c, h, w, want_logits != 0);
    } else {
        y = logits(net, in, n, c, h, w);
        if (!want_logits) y = activate(net, y);
    }
    y = y.to(torch::kCPU, torch::kFloat).contiguous();
    std::memcpy(out, y.data_ptr<float>(), (size_t)y.numel() * sizeof(float));
    return GSEG_OK;
}
SHIM_CATCH("network: forward")

void gseg__net_arena_stats(const gseg__net *net, size_t *bytes, int *recordings)
{
    *bytes = gseg::arena_bytes(net->arena);
    *recordings = gseg::arena_recordings(net->arena);
}

void gseg__net_set_tta(gseg__net *net, int tta) { net->tta = tta; }

gseg_status gseg__net_release_unfolded(gseg__net *net)
try {
    if (net->released) return GSEG_OK;
    if (!net->prepared) { /* at the fold, layer by layer */
        net->release_on_fold = true;
        return GSEG_OK;
    }
    if (!net->fold || !net->folded_valid) return GSEG_OK;
    torch::NoGradGuard ng;
    for (ConvBn *cb : net->model->conv_bns()) release_layer(cb);
    net->released = true;
    return GSEG_OK;
}
SHIM_CATCH("network: releasing the unfolded weights")

gseg_status gseg__net_features(gseg__net *net, const float *in, int n, int c, int h, int w,
                               int level, float *out, int64_t cap, int64_t shape[4])
try {
    TORCH_CHECK(level >= 1 && level <= 5, "feature level ", level, " (1..5)");
    if (!net->prepared) {
        gseg_status st = gseg__net_prepare(net, "cpu", GSEG_PRECISION_FP32, 0, 0);
        if (st != GSEG_OK) return st;
    }
    net->model->eval();
    if (net->fold && !net->folded_valid) fold_all(net);
    check_input(net, n, c, h, w);
    torch::InferenceMode guard;
    Tensor x = from_host(net, in, n, c, h, w);
    if (net->fold) x = x.to(net->dtype).contiguous(torch::MemoryFormat::ChannelsLast);
    Tensor f = net->model->encoder->forward(x, net->fold, level)[level - 1];
    f = f.to(torch::kCPU, torch::kFloat).contiguous();
    TORCH_CHECK(f.numel() <= cap, "feature buffer too small: ", f.numel(), " > ", cap);
    for (int i = 0; i < 4; i++) shape[i] = f.size(i);
    std::memcpy(out, f.data_ptr<float>(), (size_t)f.numel() * sizeof(float));
    return GSEG_OK;
}
SHIM_CATCH("network: features")

gseg_status gseg__net_train_setup(gseg__net *net, double lr, double weight_decay,
                                  gseg_precision precision)
try {
    check_not_released(net);
    if (!net->prepared) {
        gseg_status st = gseg__net_prepare(net, "cpu", GSEG_PRECISION_FP32, 0, 0);
        if (st != GSEG_OK) return st;
    }
    bool cuda = net->device.is_cuda();
    if (precision == GSEG_PRECISION_AUTO)
        precision = cuda || gseg__cpu_has_bf16() ? GSEG_PRECISION_BF16 : GSEG_PRECISION_FP32;
    if (precision == GSEG_PRECISION_FP16)
        return gseg__err(GSEG_ERR_UNSUPPORTED,
                         "training in fp16 needs loss scaling, which gseg does not do; use "
                         "--precision bf16 (CPUs with avx512_bf16/AMX, CUDA GPUs since Ampere) "
                         "or fp32");
    drop_folded(net);
    net->fold = false;
    net->precision = GSEG_PRECISION_FP32;
    net->dtype = torch::kFloat;
    net->train_precision = precision;
    if (net->device.is_cpu()) gseg::use_caching_allocator();
    net->model->train();
    {
        /* Channels-last weights and activations: the layout oneDNN's
         * fastest convolutions use (about 2x over NCHW in fp32 training on
         * CPU), and cuDNN's tensor cores'. Optimiser state follows it. */
        torch::NoGradGuard ng;
        for (auto &p : net->model->parameters())
            if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
        net->channels_last = true;
    }
    net->opt = std::make_unique<torch::optim::AdamW>(
        net->model->parameters(), torch::optim::AdamWOptions(lr).weight_decay(weight_decay));
    net->opt->zero_grad();
    return GSEG_OK;
}
SHIM_CATCH("network: training setup")

gseg_precision gseg__net_train_precision(const gseg__net *net) { return net->train_precision; }

gseg_status gseg__net_set_lr(gseg__net *net, double lr, double beta1)
try {
    TORCH_CHECK(net->opt, "no optimiser (call train_setup first)");
    for (auto &g : net->opt->param_groups()) {
        auto &o = static_cast<torch::optim::AdamWOptions &>(g.options());
        o.lr(lr);
        if (beta1 > 0) o.betas(std::make_tuple(beta1, std::get<1>(o.betas())));
    }
    return GSEG_OK;
}
SHIM_CATCH("network: learning rate")

gseg_status gseg__net_train_accumulate(gseg__net *net, const float *in, int n, int c, int h,
                                       int w, const float *target, const uint8_t *valid,
                                       double scale, double *loss)
try {
    TORCH_CHECK(net->opt, "no optimiser (call train_setup first)");
    check_input(net, n, c, h, w);
    net->model->train();
    net->folded_valid = false;
    Tensor y;
    {
        Autocast ac(net->device.type(), net->train_precision);
        y = logits(net, in, n, c, h, w); /* N,K,H,W */
    }
    y = y.to(torch::kFloat); /* the loss in fp32, as autocast does */
    Tensor t = torch::from_blob(const_cast<float *>(target), {n, h, w}, torch::kFloat)
                   .to(net->device);
    Tensor v = valid ? torch::from_blob(const_cast<uint8_t *>(valid), {n, h, w}, torch::kUInt8)
                           .to(net->device)
                           .to(torch::kFloat)
                     : torch::ones({n, h, w}, y.options());
    Tensor nv = v.sum().clamp_min(1.0);
    const double eps = 1.0;
    Tensor l;
    if (net->outputs == 1) {
        Tensor z = y.squeeze(1);
        Tensor bce = torch::binary_cross_entropy_with_logits(z, t, {}, {}, at::Reduction::None);
        Tensor p = torch::sigmoid(z) * v, tv = t * v;
        Tensor dice = 1 - (2 * (p * tv).sum() + eps) / (p.sum() + tv.sum() + eps);
        l = (bce * v).sum() / nv + dice;
    } else {
        Tensor ti = t.to(torch::kLong).clamp(0, net->outputs - 1);
        Tensor ce = torch::nll_loss2d(torch::log_softmax(y, 1), ti, {}, at::Reduction::None);
        Tensor p = torch::softmax(y, 1) * v.unsqueeze(1);
        Tensor oh = torch::one_hot(ti, net->outputs).permute({0, 3, 1, 2}).to(torch::kFloat) *
                    v.unsqueeze(1);
        Tensor inter = (p * oh).sum({0, 2, 3}), denom = p.sum({0, 2, 3}) + oh.sum({0, 2, 3});
        Tensor dice = (1 - (2 * inter + eps) / (denom + eps)).mean();
        l = (ce * v).sum() / nv + dice;
    }
    *loss = l.item<double>();
    TORCH_CHECK(std::isfinite(*loss), "the loss is not finite (", *loss, ")");
    (scale == 1.0 ? l : l * scale).backward();
    return GSEG_OK;
}
SHIM_CATCH("network: training step")

} /* extern "C" */

namespace {

/* Floating-point buffers (BatchNorm running statistics). */
std::vector<Tensor> float_buffers(gseg__net *net)
{
    std::vector<Tensor> v;
    for (auto &b : net->model->buffers())
        if (b.is_floating_point()) v.push_back(b);
    return v;
}

/* Averages the gradients over the ranks in one all-reduce, which also sums
 * *flag (a stop request any rank may raise). */
void average_grads(gseg__net *net, double *flag)
{
    std::vector<Tensor> g;
    auto params = net->model->parameters();
    for (auto &p : params) {
        if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
        g.push_back(p.grad().reshape({-1}));
    }
    g.push_back(torch::full({1}, flag ? *flag : 0.0, g[0].options()));
    Tensor flat = torch::cat(g);
    gseg__dist_allreduce_sum(net->dist, flat);
    if (flag) *flag = flat[-1].item<double>();
    flat.div_(gseg__dist_world(net->dist));
    int64_t off = 0;
    for (auto &p : params) {
        p.mutable_grad().copy_(flat.narrow(0, off, p.numel()).view_as(p));
        off += p.numel();
    }
}

} /* namespace */

extern "C" {

gseg_status gseg__net_attach_dist(gseg__net *net, gseg__dist *d)
try {
    net->dist = d;
    if (!d || gseg__dist_world(d) == 1) return GSEG_OK;
    torch::NoGradGuard ng;
    std::vector<Tensor> t;
    for (auto &p : net->model->parameters()) t.push_back(p);
    gseg__dist_broadcast(d, t, 0);
    auto b = float_buffers(net);
    gseg__dist_broadcast(d, b, 0);
    net->folded_valid = false;
    return GSEG_OK;
}
SHIM_CATCH("network: joining the process group")

gseg_status gseg__net_train_apply(gseg__net *net, double *flag)
try {
    TORCH_CHECK(net->opt, "no optimiser (call train_setup first)");
    bool dp = net->dist && gseg__dist_world(net->dist) > 1;
    if (dp) {
        torch::NoGradGuard ng;
        average_grads(net, flag);
    }
    net->opt->step();
    clear_grads(net);
    if (dp) {
        /* Rank 0's BatchNorm statistics everywhere, as DDP's
         * broadcast_buffers does, so every rank holds the same model. */
        torch::NoGradGuard ng;
        auto b = float_buffers(net);
        gseg__dist_broadcast(net->dist, b, 0);
    }
    return GSEG_OK;
}
SHIM_CATCH("network: optimiser step")

gseg_status gseg__net_train_step(gseg__net *net, const float *in, int n, int c, int h, int w,
                                 const float *target, const uint8_t *valid, double *loss)
{
    gseg_status st = gseg__net_train_accumulate(net, in, n, c, h, w, target, valid, 1.0, loss);
    return st == GSEG_OK ? gseg__net_train_apply(net, NULL) : st;
}

namespace {
/* An output stream buffer growing one malloc'd block, handed over to C
 * without a copy (an ostringstream would hold the bytes twice more). */
struct MallocBuf final : std::streambuf {
    char *p = nullptr;
    size_t n = 0, cap = 0;
    ~MallocBuf() override { free(p); }
    std::streamsize xsputn(const char *s, std::streamsize k) override
    {
        size_t need = n + (size_t)k;
        if (need > cap) {
            size_t c = std::max(need, cap + cap / 2 + ((size_t)1 << 20));
            auto *q = static_cast<char *>(realloc(p, c));
            if (!q) return 0;
            p = q;
            cap = c;
        }
        std::memcpy(p + n, s, (size_t)k);
        n = need;
        return k;
    }
    int_type overflow(int_type c) override
    {
        if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
        char ch = traits_type::to_char_type(c);
        return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
    }
};
} // namespace

gseg_status gseg__net_opt_image(gseg__net *net, void **data, size_t *size)
try {
    *data = nullptr;
    *size = 0;
    TORCH_CHECK(net->opt, "no optimiser (call train_setup first)");
    MallocBuf buf;
    std::ostream os(&buf);
    torch::save(*net->opt, os);
    if (!os) return gseg__err(GSEG_ERR_NOMEM, "out of memory serialising the optimiser state");
    *data = buf.p;
    *size = buf.n;
    buf.p = nullptr;
    return GSEG_OK;
}
SHIM_CATCH("serialising the optimiser state")

gseg_status gseg__net_opt_load(gseg__net *net, const char *path)
try {
    TORCH_CHECK(net->opt, "no optimiser (call train_setup first)");
    torch::load(*net->opt, path);
    return GSEG_OK;
}
catch (const c10::Error &e) {
    std::string m = e.what_without_backtrace();
    m.resize(std::min(m.find('\n'), m.size()));
    return gseg__err(GSEG_ERR_FORMAT, "%s: cannot read the optimiser state (%s)", path, m.c_str());
}
catch (const std::exception &e) {
    return gseg__err(GSEG_ERR_FORMAT, "%s: cannot read the optimiser state (%s)", path, e.what());
}
catch (...) {
    return gseg__err(GSEG_ERR_FORMAT, "%s: cannot read the optimiser state", path);
}

int gseg__net_torch_version(void) { return TORCH_VERSION_MAJOR * 100 + TORCH_VERSION_MINOR; }

gseg_status gseg__pickle_tensors(const char *what, const void *bytes, size_t n,
                                 gseg__tensor_fn fn, void *user)
try {
    static const char hint[] =
        "convert it to safetensors in Python: python3 -c \"import torch, safetensors.torch as s; "
        "s.save_file({k: v.contiguous() for k, v in torch.load('IN.pth', map_location='cpu').items()}, "
        "'OUT.safetensors')\"";
    std::vector<char> buf(static_cast<const char *>(bytes), static_cast<const char *>(bytes) + n);
    c10::IValue v;
    try {
        v = torch::pickle_load(buf);
    }
    catch (const c10::Error &) {
        /* 1.13 fails inside pickle_load on state_dict()'s OrderedDict (an
         * internal assert) and on one-item dicts: say what it can read. */
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s: libtorch cannot read this torch.save file (it reads a plain dict "
                         "of tensors, not the OrderedDict of model.state_dict()); %s",
                         what, hint);
    }
    if (!v.isGenericDict())
        return gseg__err(GSEG_ERR_FORMAT,
                         "%s: libtorch read this torch.save file as %s, not a dict of tensors "
                         "(state_dict() OrderedDicts are not readable from C++); %s",
                         what, v.tagKind().c_str(), hint);
    for (const auto &kv : v.toGenericDict()) {
        if (!kv.key().isString() || !kv.value().isTensor())
            return gseg__err(GSEG_ERR_FORMAT, "%s: not a dict of name -> tensor; %s", what, hint);
        Tensor t = kv.value().toTensor().detach().to(torch::kCPU);
        bool is_int = !t.is_floating_point();
        t = t.to(is_int ? torch::kLong : torch::kFloat).contiguous();
        std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
        gseg_status st = fn(user, kv.key().toStringRef().c_str(), (int)shape.size(), shape.data(),
                            is_int, t.data_ptr());
        if (st != GSEG_OK) return st;
    }
    return GSEG_OK;
}
SHIM_CATCH("reading a torch.save file")

} /* extern "C" */
