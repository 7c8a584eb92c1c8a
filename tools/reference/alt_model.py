"""The 'alt' configuration: its config, checkpoint args, and seeded random weights.

Weights are drawn the way the reference initialises a fresh model (timm / open_clip defaults,
UniTok's init_weights on the decoder and both projections, init_vocab on the codebooks), then
every LayerNorm weight/bias and every bias gets N(0, 0.05^2) noise, as in the official goldens.
Random numbers come from NumPy's PCG64, so they are reproducible but not the torch stream.
"""
import collections
import math

import numpy as np

ALT_CONFIG = collections.OrderedDict([
    ("model", "vitamin_alt96"),
    ("img_size", 96),
    ("vocab_size", 768),
    ("vocab_width", 32),
    ("num_codebooks", 2),
    ("vq_beta", 0.25),
    ("quant_proj", "attn"),
    ("num_query", 0),
    ("embed_dim", 40),
    ("drop_path", 0.0),
    ("text_width", 36),
    ("text_heads", 3),
    ("text_layers", 1),
    ("text_vocab_size", 49408),
    ("text_context_length", 77),
    ("vae_init", -0.5),
    ("vocab_init", -1),
    ("seed", 3),
    ("stem_width", 16),
    ("conv_stage_dims", [24, 40]),
    ("conv_stage_depths", [2, 1]),
    ("conv_expand_ratio", 4.0),
    ("vit_width", 96),
    ("vit_depth", 3),
    ("vit_heads", 3),
    ("vit_mlp_ratio", 2.0),
    ("attn_proj_heads", 3),
    ("attn_proj_mlp_ratio", 2.0),
    ("decoder_dims", [96, 40, 24]),
    ("decoder_up_depths", [1, 3]),
    ("text_mlp_ratio", 4.0),
])


def checkpoint_args(cfg):
    """``args`` of the training checkpoint: every reference ``Args`` field except ``device``,
    in the reference's order (as in the golden model.pth), then the extra architecture keys.
    ``dtype`` must be replaced by the caller with a pickle stand-in for torch.float32."""
    a = collections.OrderedDict()
    a["model"] = cfg["model"]
    a["exp_name"] = "unitok_ref_" + cfg["model"]
    a["output_dir"] = "local_output"
    a["resume_from"] = ""
    a["lpips_path"] = "external/lpips_with_vgg.pth"
    a["dino_path"] = "external/dinov2_vits14_pretrain.pth"
    a["fid_eval_src"] = ""
    a["fid_eval_dst"] = ""
    a["vis_img_dir"] = "asset/vis_imgs/"
    a["fid_feature_extractor"] = "external/weights-inception-2015-12-05-6726825d.pth"
    a["clip_pretrain_path"] = ""
    for k in ("fp16", "bf16", "tf32", "compile_model", "ddp_static"):
        a[k] = False
    a["grad_ckpt"] = True
    a["grad_accu"] = 1
    a["dtype"] = "torch.float32"  # placeholder, see docstring
    a["train_data"] = None
    a["val_data"] = None
    a["dataset_type"] = "webdataset"
    a["imagenet_val"] = None
    a["imagenet_v2"] = None
    a["subset_ratio"] = 1.0
    a["img_size"] = cfg["img_size"]
    a["resize_ratio"] = 1.125
    a["hflip"] = False
    a["workers"] = 8
    a["train_num_samples"] = 1280000000
    a["train_data_upsampling_factors"] = None
    a["dataset_resampled"] = False
    a["use_aug"] = False
    a["vocab_size"] = cfg["vocab_size"]
    a["vocab_width"] = cfg["vocab_width"]
    a["vocab_norm"] = True
    a["vq_beta"] = cfg["vq_beta"]
    a["num_codebooks"] = cfg["num_codebooks"]
    a["quant_proj"] = cfg["quant_proj"]
    a["embed_dim"] = cfg["embed_dim"]
    a["num_query"] = cfg["num_query"]
    a["use_clip_pretrain"] = False
    a["patch_size"] = 16
    a["drop_path"] = cfg["drop_path"]
    a["text_width"] = cfg["text_width"]
    a["text_heads"] = cfg["text_heads"]
    a["text_layers"] = cfg["text_layers"]
    a["text_vocab_size"] = cfg["text_vocab_size"]
    a["text_context_length"] = cfg["text_context_length"]
    a["local_loss"] = True
    a["gather_with_grad"] = True
    a["pretrained_clip"] = None
    a["pretrained_clip_text"] = None
    a["lock_text"] = False
    a["lock_text_unlocked_layers"] = 0
    a["lock_text_freeze_layer_norm"] = False
    a["force_custom_text"] = False
    a["force_custom_vision"] = False
    a["zeroshot_eval_freq"] = 1
    a["dino_depth"] = 12
    a["dino_kernel_size"] = 9
    a["disc_norm"] = "gn"
    a["disc_aug_prob"] = 1.0
    a["disc_specnorm"] = False
    a["step_disc_every"] = 1
    a["vae_init"] = cfg["vae_init"]
    a["vocab_init"] = cfg["vocab_init"]
    a["disc_init"] = -0.5
    a["epoch"] = 1
    a["local_bs"] = 2
    a["vae_local_bs"] = 2
    a["global_bs"] = 2
    a["lr"] = 0.001
    a["wd"] = 0.02
    a["disc_lr"] = 2e-05
    a["disc_wd"] = 0.2
    a["grad_clip"] = 10
    a["ema"] = 0.9999
    a["warmup_iter"] = None
    a["warmup_ep"] = 0.01
    a["disc_start_ep"] = 0.375
    a["disc_warmup_ep"] = 0.03
    a["schedule"] = "cos"
    a["lr_start_ratio"] = 0.0
    a["lr_end_ratio"] = 0.1
    a["disc_lr_end_ratio"] = 0.1
    a["custom_lr_multiplier"] = None
    a["optimizer"] = "adamw"
    a["optim_eps"] = 1e-06
    a["fuse_opt"] = False
    a["optim_beta"] = "0.9_0.95"
    a["disc_optim_beta"] = "0.5_0.9"
    a["l1"] = 0.2
    a["l2"] = 1.0
    a["lp"] = 0.0
    a["lpr"] = 48
    a["ld"] = 0.4
    a["le"] = 0.0
    a["lq"] = 1.0
    a["lc"] = 1.0
    a["e_temp"] = 0.01
    a["gada"] = 1
    a["bcr"] = 4.0
    a["bcr_cut"] = 0.2
    a["dcrit"] = "hg"
    a["report_wandb"] = False
    a["wandb_notes"] = None
    a["run_id"] = None
    a["eval_per_epoch"] = 8
    a["dbg_unused_param"] = False
    a["dbg_nan"] = False
    a["seed"] = cfg["seed"]
    a["deterministic"] = False
    a["same_seed_for_all_ranks"] = 0
    for k in ("stem_width", "conv_stage_dims", "conv_stage_depths", "conv_expand_ratio",
              "vit_width", "vit_depth", "vit_heads", "vit_mlp_ratio", "attn_proj_heads",
              "attn_proj_mlp_ratio", "decoder_dims", "decoder_up_depths", "text_mlp_ratio"):
        a[k] = cfg[k]
    return a


def mid_width(c_out, ratio):
    from unitok_ref import make_divisible
    return make_divisible(c_out * ratio)


def param_specs(cfg):
    """(key, shape, init) in state-dict order.  init is a tuple (kind, *args)."""
    specs = []

    def add(key, shape, init):
        specs.append((key, tuple(shape), init))

    def ln(p, c, buf=False):
        add(p + ".weight", (c,), ("ones_ln",))
        add(p + ".bias", (c,), ("zeros_ln",))

    W = cfg["vit_width"]
    r = cfg["conv_expand_ratio"]
    add("logit_scale", (), ("const", math.log(1 / 0.07)))
    add("encoder.pos_embed", (1, 1, W), ("zeros",))
    bb = "encoder.patch_embed.backbone"
    sw = cfg["stem_width"]
    add(bb + ".stem.conv1.weight", (sw, 3, 3, 3), ("conv_fan_out", 1))
    add(bb + ".stem.conv1.bias", (sw,), ("zeros",))
    ln(bb + ".stem.norm1", sw)
    add(bb + ".stem.conv2.weight", (sw, sw, 3, 3), ("conv_fan_out", 1))
    add(bb + ".stem.conv2.bias", (sw,), ("zeros",))
    c_in = sw
    for si, (dim, depth) in enumerate(zip(cfg["conv_stage_dims"], cfg["conv_stage_depths"])):
        for bi in range(depth):
            p = f"{bb}.stages.{si}.{bi}"
            mid = mid_width(dim, r)
            if c_in != dim:
                add(p + ".shortcut.expand.weight", (dim, c_in, 1, 1), ("conv_fan_out", 1))
                add(p + ".shortcut.expand.bias", (dim,), ("zeros",))
            ln(p + ".pre_norm", c_in)
            add(p + ".conv1_1x1.weight", (mid, c_in, 1, 1), ("conv_fan_out", 1))
            add(p + ".conv1_1x1.bias", (mid,), ("zeros",))
            add(p + ".conv2_kxk.weight", (mid, 1, 3, 3), ("conv_fan_out", mid))
            add(p + ".conv2_kxk.bias", (mid,), ("zeros",))
            add(p + ".conv3_1x1.weight", (dim, mid, 1, 1), ("conv_fan_out", 1))
            add(p + ".conv3_1x1.bias", (dim,), ("zeros",))
            c_in = dim
    add(bb + ".pool.proj.weight", (W, c_in, 3, 3), ("torch_default",))
    add(bb + ".pool.proj.bias", (W,), ("torch_default_bias", c_in * 9))
    ln(bb + ".pool.norm", c_in)

    hid = int(W * cfg["vit_mlp_ratio"])

    def vit_blocks(prefix):
        for i in range(cfg["vit_depth"]):
            p = f"{prefix}.blocks.{i}"
            ln(p + ".norm1", W)
            add(p + ".attn.qkv.weight", (3 * W, W), ("trunc02",))
            add(p + ".attn.qkv.bias", (3 * W,), ("zeros",))
            add(p + ".attn.proj.weight", (W, W), ("trunc02",))
            add(p + ".attn.proj.bias", (W,), ("zeros",))
            ln(p + ".norm2", W)
            geglu(p + ".mlp", W, hid)

    def geglu(p, c, h):
        ln(p + ".norm", c)
        add(p + ".w0.weight", (h, c), ("trunc02",))
        add(p + ".w0.bias", (h,), ("zeros",))
        add(p + ".w1.weight", (h, c), ("trunc02",))
        add(p + ".w1.bias", (h,), ("zeros",))
        add(p + ".w2.weight", (c, h), ("trunc02",))
        add(p + ".w2.bias", (c,), ("zeros",))

    vit_blocks("encoder")
    ln("encoder.norm", W)

    def attn_proj(p, c_in, c_out):
        inner = max(c_in, c_out)
        ln(p + ".norm1", c_in)
        add(p + ".attn.q_bias", (inner,), ("zeros",))
        add(p + ".attn.v_bias", (inner,), ("zeros",))
        add(p + ".attn.zero_k_bias", (inner,), ("buffer_zeros",))
        add(p + ".attn.qkv.weight", (3 * inner, c_in), ("trunc02",))
        a_out = inner // cfg["attn_proj_heads"] if c_in > c_out else inner
        add(p + ".attn.proj.weight", (a_out, a_out), ("trunc02",))
        add(p + ".attn.proj.bias", (a_out,), ("zeros",))
        add(p + ".proj.weight", (c_out, c_in), ("trunc02",))
        add(p + ".proj.bias", (c_out,), ("zeros",))
        ln(p + ".norm3", c_in)
        ln(p + ".norm2", c_out)
        geglu(p + ".mlp", c_out, int(c_out * cfg["attn_proj_mlp_ratio"]))

    VW, G = cfg["vocab_width"], cfg["num_codebooks"]
    attn_proj("quant_proj", W, VW)
    K, d = cfg["vocab_size"] // G, VW // G
    for i in range(G):
        add(f"quantizer.codebooks.{i}.vocab_usage", (K,), ("buffer_zeros",))
        add(f"quantizer.codebooks.{i}.codebook.weight", (K, d), ("uniform", d ** -0.5 / 36))
    attn_proj("post_quant_proj", VW, W)

    vit_blocks("decoder")
    ln("decoder.norm", W)
    _, d1, d2 = cfg["decoder_dims"]
    add("decoder.up_conv1.conv.weight", (d1, W, 3, 3), ("xavier05",))
    add("decoder.up_conv1.conv.bias", (d1,), ("zeros",))
    c_in = d1
    for name, dim, depth in (("up_conv2", d1, cfg["decoder_up_depths"][0]),
                             ("up_conv3", d2, cfg["decoder_up_depths"][1])):
        for j in range(depth):
            p = f"decoder.{name}.{j}"
            mid = mid_width(dim, r)
            if j == 0:
                add(p + ".shortcut.conv.weight", (dim, c_in, 3, 3), ("xavier05",))
                add(p + ".shortcut.conv.bias", (dim,), ("zeros",))
            elif c_in != dim:
                add(p + ".shortcut.conv.weight", (dim, c_in, 1, 1), ("xavier05",))
                add(p + ".shortcut.conv.bias", (dim,), ("zeros",))
            ln(p + ".pre_norm", c_in)
            add(p + ".conv1_1x1.weight", (mid, c_in, 1, 1), ("xavier05",))
            add(p + ".conv1_1x1.bias", (mid,), ("zeros",))
            if j == 0:
                add(p + ".up.conv.weight", (mid, mid, 3, 3), ("xavier05",))
                add(p + ".up.conv.bias", (mid,), ("zeros",))
            add(p + ".conv2_kxk.weight", (mid, 1, 3, 3), ("xavier05",))
            add(p + ".conv2_kxk.bias", (mid,), ("zeros",))
            add(p + ".conv3_1x1.weight", (dim, mid, 1, 1), ("xavier05",))
            add(p + ".conv3_1x1.bias", (dim,), ("zeros",))
            c_in = dim
    add("decoder.up_conv4.conv1.conv.weight", (d2, d2, 3, 3), ("xavier05",))
    add("decoder.up_conv4.conv1.conv.bias", (d2,), ("zeros",))
    ln("decoder.up_conv4.norm1", d2)
    add("decoder.up_conv4.conv2.weight", (3, d2, 3, 3), ("xavier05",))
    add("decoder.up_conv4.conv2.bias", (3,), ("zeros",))

    TW, E, TL = cfg["text_width"], cfg["embed_dim"], cfg["text_layers"]
    th = int(TW * cfg["text_mlp_ratio"])
    t = "text_encoder"
    add(t + ".text_projection", (TW, E), ("normal", TW ** -0.5))
    add(t + ".positional_embedding", (cfg["text_context_length"], TW), ("normal", 0.01))
    add(t + ".token_embedding.weight", (cfg["text_vocab_size"], TW), ("normal", 0.02))
    proj_std = TW ** -0.5 * (2 * TL) ** -0.5
    for i in range(TL):
        p = f"{t}.transformer.resblocks.{i}"
        ln(p + ".ln_1", TW)
        add(p + ".attn.in_proj_weight", (3 * TW, TW), ("normal", TW ** -0.5))
        add(p + ".attn.in_proj_bias", (3 * TW,), ("zeros",))
        add(p + ".attn.out_proj.weight", (TW, TW), ("normal", proj_std))
        add(p + ".attn.out_proj.bias", (TW,), ("zeros",))
        ln(p + ".ln_2", TW)
        add(p + ".mlp.c_fc.weight", (th, TW), ("normal", (2 * TW) ** -0.5))
        add(p + ".mlp.c_fc.bias", (th,), ("torch_default_bias", TW))
        add(p + ".mlp.c_proj.weight", (TW, th), ("normal", proj_std))
        add(p + ".mlp.c_proj.bias", (TW,), ("torch_default_bias", th))
    ln(t + ".ln_final", TW)
    ln("fc_norm", W)
    add("projection.weight", (E, W), ("torch_default",))
    add("projection.bias", (E,), ("torch_default_bias", W))
    return specs


def _trunc_normal(rng, shape, std, lo=-2.0, hi=2.0):
    x = rng.normal(0.0, std, size=shape)
    bad = (x < lo) | (x > hi)
    while bad.any():
        x[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = (x < lo) | (x > hi)
    return x


def init_value(rng, shape, init):
    kind = init[0]
    if kind in ("zeros", "zeros_ln", "buffer_zeros"):
        return np.zeros(shape)
    if kind == "ones_ln":
        return np.ones(shape)
    if kind == "const":
        return np.full(shape, init[1])
    if kind == "trunc02":
        return _trunc_normal(rng, shape, 0.02)
    if kind == "normal":
        return rng.normal(0.0, init[1], size=shape)
    if kind == "uniform":
        return rng.uniform(-init[1], init[1], size=shape)
    if kind == "conv_fan_out":  # timm: normal(0, sqrt(2 / fan_out)), fan_out = k*k*out/groups
        groups = init[1]
        fan_out = shape[0] * shape[2] * shape[3] // groups
        return rng.normal(0.0, math.sqrt(2.0 / fan_out), size=shape)
    if kind == "xavier05":  # xavier_normal_(gain=0.5), torch's fan computation (ignores groups)
        rf = int(np.prod(shape[2:]))
        fan_in, fan_out = shape[1] * rf, shape[0] * rf
        return rng.normal(0.0, 0.5 * math.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    if kind == "torch_default":  # kaiming_uniform_(a=sqrt(5)) -> U(+-1/sqrt(fan_in))
        fan_in = int(np.prod(shape[1:]))
        b = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-b, b, size=shape)
    if kind == "torch_default_bias":
        b = 1.0 / math.sqrt(init[1])
        return rng.uniform(-b, b, size=shape)
    raise ValueError(kind)


def is_perturbed(key, init):
    """Every LayerNorm weight/bias and every parameter named *bias (not the zero_k_bias buffer)."""
    if init[0].startswith("buffer"):
        return False
    return init[0] in ("ones_ln", "zeros_ln") or key.endswith("bias")


def build_weights(cfg, seed=None, noise_seed=1000, noise_std=0.05):
    """OrderedDict key -> float32 array, plus the list of perturbed keys."""
    specs = param_specs(cfg)
    rng = np.random.Generator(np.random.PCG64(cfg["seed"] if seed is None else seed))
    sd = collections.OrderedDict()
    for key, shape, init in specs:
        sd[key] = init_value(rng, shape, init)
    nrng = np.random.Generator(np.random.PCG64(noise_seed))
    perturbed = []
    for key, shape, init in specs:
        if is_perturbed(key, init):
            sd[key] = sd[key] + nrng.normal(0.0, noise_std, size=shape)
            perturbed.append(key)
    for key in sd:
        sd[key] = np.asarray(sd[key], dtype=np.float32)
    return sd, perturbed, specs
