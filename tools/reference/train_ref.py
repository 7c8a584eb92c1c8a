"""PyTorch reference of the UniTok forward pass and of one training step (float64 by default).

This is our own code: a port of the NumPy reference ``unitok_ref.py`` (which was written from
the architecture notes and validated against the official forward goldens) to torch ops, so
that autograd supplies the gradients.  It does not import or copy the official UniTok code.
The training-step semantics follow the official goldens' README, section 6:

- encoder -> quant_proj -> per sub-codebook: z = L2norm(chunk); code = cosine argmax, taken on
  a float32 similarity matrix like the official model (the working-dtype argmax is computed
  too, and disagreements are reported); q = L2norm(codebook row);
- straight-through: the decoder sees post_quant_proj(z + sg[q - z]);
- l1, l2 = mean |x_hat - x|, mean (x_hat - x)^2 on the **unclamped** decoder output;
- vq = mean over sub-codebooks of beta * mean((sg[q] - z)^2) + mean((q - sg[z])^2);
- clip = symmetric InfoNCE with s = exp(logit_scale); image features are
  L2norm(projection(fc_norm(mean over tokens of the training-path post_quant_proj output))),
  text features the normalised text-tower output;
- total = ((w_l1 * l1 + w_l2 * l2) + w_vq * vq) + w_clip * clip;
- global-norm clipping like ``torch.nn.utils.clip_grad_norm_``; one AdamW step (step index 1,
  torch's single-tensor formula) with the no-decay rule; logit_scale clamped to [0, ln 100];
  the ``vocab_usage`` buffers updated with this batch's code histogram.

Stochastic depth (drop_path) is 0 in every configuration we use and is not implemented; LPIPS
and the GAN term are not part of the step (weights 0, as in the goldens).

Layouts follow PyTorch (see unitok_ref.py).  Entry points: ``UniTokTorch`` (the model over a
dict of tensors), ``train_step`` (one full step from a NumPy state dict) and ``no_decay``.
"""
import dataclasses
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unitok_ref  # noqa: E402  (config rules and timm's channel rounding are shared)

NO_DECAY_NAME_PARTS = ("norm_scale", "bn", "ln", "bias", "logit_scale")
FROZEN = ("encoder.pos_embed",)


def is_buffer(name):
    """State-dict entries that are buffers, not parameters."""
    return name.endswith(".vocab_usage") or name.endswith(".zero_k_bias")


def is_trainable(name):
    return not is_buffer(name) and name not in FROZEN


def no_decay(name, shape):
    """The reference's weight-decay rule: no decay for tensors with fewer than 2 dims and for
    names containing norm_scale, bn, ln, bias or logit_scale."""
    return len(shape) < 2 or any(part in name for part in NO_DECAY_NAME_PARTS)


@dataclasses.dataclass
class StepHparams:
    """Optimiser and loss settings of one step (defaults: the tiny64 golden step)."""
    lr: float = 1e-3
    betas: tuple = (0.9, 0.95)
    eps: float = 1e-6
    weight_decay: float = 0.02
    clip_grad: float = 10.0
    w_l1: float = 0.2
    w_l2: float = 1.0
    w_vq: float = 1.0
    w_clip: float = 1.0
    vq_beta: float = 0.25
    logit_scale_max: float = math.log(100.0)


# ---------------------------------------------------------------- elementary ops


def l2_normalize(x, eps=1e-12):
    """F.normalize over the last axis: x / max(||x||, eps)."""
    return F.normalize(x, p=2.0, dim=-1, eps=eps)


def sdpa(q, k, v, causal=False):
    """softmax(q k^T / sqrt(d) [+ additive causal -inf mask]) v over (B, heads, L, d)."""
    d = q.shape[-1]
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
    if causal:
        L = s.shape[-1]
        mask = torch.triu(torch.ones(L, L, dtype=torch.bool, device=s.device), 1)
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def upsample_nearest2(x):
    return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


# ---------------------------------------------------------------- model


class UniTokTorch:
    """The UniTok graph over a dict ``p`` of tensors keyed by official state-dict names."""

    def __init__(self, p, cfg):
        unitok_ref.check_config(cfg)
        self.p = p
        self.cfg = cfg

    def P(self, name):
        return self.p[name]

    # ---- shared building blocks

    def ln(self, prefix, x, eps):
        return F.layer_norm(x, x.shape[-1:], self.P(prefix + ".weight"), self.P(prefix + ".bias"),
                            eps)

    def ln2d(self, prefix, x, eps=1e-6):
        """LayerNorm over the channels of an NCHW tensor, at every pixel."""
        return self.ln(prefix, x.permute(0, 2, 3, 1), eps).permute(0, 3, 1, 2)

    def lin(self, prefix, x, bias=True):
        return F.linear(x, self.P(prefix + ".weight"), self.P(prefix + ".bias") if bias else None)

    def conv(self, prefix, x, stride=1, padding=None, depthwise=False):
        w = self.P(prefix + ".weight")
        if padding is None:
            padding = w.shape[-1] // 2
        return F.conv2d(x, w, self.P(prefix + ".bias"), stride=stride, padding=padding,
                        groups=w.shape[0] if depthwise else 1)

    def upsample_conv(self, prefix, x):
        """timm Upsample2d: nearest x2, then 3x3 conv (padding 1) with bias."""
        return self.conv(prefix, upsample_nearest2(x))

    def geglu(self, prefix, x):
        """GeGLU MLP with its own LayerNorm (eps 1e-6) and tanh-GELU."""
        n = self.ln(prefix + ".norm", x, 1e-6)
        h = F.gelu(self.lin(prefix + ".w0", n), approximate="tanh") * self.lin(prefix + ".w1", n)
        return self.lin(prefix + ".w2", h)

    def vit_block(self, prefix, x, heads):
        B, L, C = x.shape
        hd = C // heads
        n = self.ln(prefix + ".norm1", x, 1e-6)
        qkv = self.lin(prefix + ".attn.qkv", n).reshape(B, L, 3, heads, hd).permute(2, 0, 3, 1, 4)
        o = sdpa(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(B, L, C)
        x = x + self.lin(prefix + ".attn.proj", o)
        return x + self.geglu(prefix + ".mlp", self.ln(prefix + ".norm2", x, 1e-6))

    # ---- encoder

    def mbconv(self, prefix, x, c_out, stride):
        c_in = x.shape[1]
        if stride == 2:
            sc = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            if c_in != c_out:
                sc = self.conv(prefix + ".shortcut.expand", sc, padding=0)
        elif c_in != c_out:
            sc = self.conv(prefix + ".shortcut.expand", x, padding=0)
        else:
            sc = x
        h = self.ln2d(prefix + ".pre_norm", x)
        h = F.gelu(self.conv(prefix + ".conv1_1x1", h, padding=0))
        h = F.gelu(self.conv(prefix + ".conv2_kxk", h, stride=stride, padding=1, depthwise=True))
        h = self.conv(prefix + ".conv3_1x1", h, padding=0)
        return h + sc

    def encoder(self, x):
        cfg = self.cfg
        bb = "encoder.patch_embed.backbone"
        h = self.conv(bb + ".stem.conv1", x, stride=2, padding=1)
        h = F.gelu(self.ln2d(bb + ".stem.norm1", h))
        h = self.conv(bb + ".stem.conv2", h, padding=1)
        for si, (dim, depth) in enumerate(zip(cfg["conv_stage_dims"], cfg["conv_stage_depths"])):
            for bi in range(depth):
                h = self.mbconv(f"{bb}.stages.{si}.{bi}", h, dim, 2 if bi == 0 else 1)
        h = self.conv(bb + ".pool.proj", self.ln2d(bb + ".pool.norm", h), stride=2, padding=1)
        B, C, H, W = h.shape
        t = h.reshape(B, C, H * W).transpose(1, 2)
        t = t + self.P("encoder.pos_embed")  # all zeros and frozen; kept for fidelity
        for i in range(cfg["vit_depth"]):
            t = self.vit_block(f"encoder.blocks.{i}", t, cfg["vit_heads"])
        return self.ln("encoder.norm", t, 1e-6)

    # ---- AttnProjection (quant_proj and post_quant_proj)

    def attn_projection(self, prefix, x):
        heads = self.cfg["attn_proj_heads"]
        B, L, c_in = x.shape
        w_qkv = self.P(prefix + ".attn.qkv.weight")
        inner = w_qkv.shape[0] // 3
        c_out = self.P(prefix + ".proj.weight").shape[0]
        hd = inner // heads
        bias = torch.cat([self.P(prefix + ".attn.q_bias"), self.P(prefix + ".attn.zero_k_bias"),
                          self.P(prefix + ".attn.v_bias")])
        n1 = self.ln(prefix + ".norm1", x, 1e-5)
        qkv = F.linear(n1, w_qkv, bias).reshape(B, L, 3, heads, hd).permute(2, 0, 3, 1, 4)
        o = sdpa(qkv[0], qkv[1], qkv[2])  # (B, heads, L, hd)
        if c_in > c_out:
            o = o.mean(dim=1)  # average over heads
            if hd != c_out:
                o = F.adaptive_avg_pool1d(o, c_out)
        else:
            o = o.transpose(1, 2).reshape(B, L, inner)  # concatenate heads
        a = self.lin(prefix + ".attn.proj", o)
        y = self.lin(prefix + ".proj", self.ln(prefix + ".norm3", x, 1e-5)) + a
        return y + self.geglu(prefix + ".mlp", self.ln(prefix + ".norm2", y, 1e-5))

    # ---- multi-codebook quantiser, training path

    def quantize(self, quant_in, vq_beta):
        """Straight-through quantisation of (B, L, vocab_width) features.

        Returns (z_st, vq_loss, codes (B, G, L) int64, diagnostics).  z_st = z + sg[q - z]
        (value q up to rounding, gradient to z); codes from the float32 cosine argmax.
        """
        G = self.cfg["num_codebooks"]
        B, L, W = quant_in.shape
        d = W // G
        parts, losses = [], []
        codes = torch.zeros(B, G, L, dtype=torch.int64)
        codes_wd = torch.zeros(B, G, L, dtype=torch.int64)
        margin = torch.zeros(B, G, L, dtype=torch.float32)
        for i in range(G):
            chunk = quant_in[..., i * d:(i + 1) * d]
            z = l2_normalize(chunk)
            wname = f"quantizer.codebooks.{i}.codebook.weight"
            rows = l2_normalize(self.P(wname))
            with torch.no_grad():
                # code choice in float32, as the official model does
                z32 = l2_normalize(chunk.detach().float())
                sims = z32 @ l2_normalize(self.P(wname).detach().float()).T  # (B, L, K)
                idx = sims.argmax(dim=-1)  # first index on ties
                top2 = sims.topk(2, dim=-1).values
                margin[:, i, :] = top2[..., 0] - top2[..., 1]
                codes_wd[:, i, :] = (z.detach() @ rows.detach().T).argmax(dim=-1)
            codes[:, i, :] = idx
            q = rows[idx]  # (B, L, d), differentiable w.r.t. the codebook
            commit = torch.mean((q.detach() - z) ** 2)
            codebook = torch.mean((q - z.detach()) ** 2)
            losses.append(vq_beta * commit + codebook)
            parts.append((q - z).detach() + z)
        vq = torch.stack(losses).mean()
        diag = {"codes_working_dtype": codes_wd, "code_margin": margin}
        return torch.cat(parts, dim=-1), vq, codes, diag

    # ---- decoder

    def inv_mbconv(self, prefix, x, c_out, stride):
        c_in = x.shape[1]
        if stride == 2:
            sc = self.upsample_conv(prefix + ".shortcut.conv", x)
        elif c_in != c_out:
            sc = self.conv(prefix + ".shortcut.conv", x, padding=0)
        else:
            sc = x
        h = self.ln2d(prefix + ".pre_norm", x)
        h = F.gelu(self.conv(prefix + ".conv1_1x1", h, padding=0))
        if stride == 2:
            h = self.upsample_conv(prefix + ".up.conv", h)
        h = F.gelu(self.conv(prefix + ".conv2_kxk", h, padding=1, depthwise=True))
        h = self.conv(prefix + ".conv3_1x1", h, padding=0)
        return h + sc

    def decoder(self, t):
        """Tokens (B, L, vit_width) -> unclamped image (B, 3, 16*sqrt(L), 16*sqrt(L))."""
        cfg = self.cfg
        for i in range(cfg["vit_depth"]):
            t = self.vit_block(f"decoder.blocks.{i}", t, cfg["vit_heads"])
        t = self.ln("decoder.norm", t, 1e-6)
        B, L, C = t.shape
        H = int(round(math.sqrt(L)))
        assert H * H == L, "the decoder needs a square token grid"
        h = t.transpose(1, 2).reshape(B, C, H, H)
        h = self.upsample_conv("decoder.up_conv1.conv", h)
        _, d1, d2 = cfg["decoder_dims"]
        for name, dim, depth in (("up_conv2", d1, cfg["decoder_up_depths"][0]),
                                 ("up_conv3", d2, cfg["decoder_up_depths"][1])):
            for j in range(depth):
                h = self.inv_mbconv(f"decoder.{name}.{j}", h, dim, 2 if j == 0 else 1)
        h = self.upsample_conv("decoder.up_conv4.conv1.conv", h)
        h = F.gelu(self.ln2d("decoder.up_conv4.norm1", h))
        return self.conv("decoder.up_conv4.conv2", h, padding=1)

    # ---- CLIP heads

    def image_features(self, post_quant):
        m = post_quant.mean(dim=1)
        return l2_normalize(self.lin("projection", self.ln("fc_norm", m, 1e-6)))

    def text_features(self, ids):
        cfg = self.cfg
        B, T = ids.shape
        pre = "text_encoder"
        x = self.P(pre + ".token_embedding.weight")[ids] + self.P(pre + ".positional_embedding")[:T]
        heads = cfg["text_heads"]
        C = x.shape[-1]
        hd = C // heads
        for i in range(cfg["text_layers"]):
            p = f"{pre}.transformer.resblocks.{i}"
            n = self.ln(p + ".ln_1", x, 1e-5)
            qkv = F.linear(n, self.P(p + ".attn.in_proj_weight"), self.P(p + ".attn.in_proj_bias"))
            qkv = qkv.reshape(B, T, 3, heads, hd).permute(2, 0, 3, 1, 4)
            o = sdpa(qkv[0], qkv[1], qkv[2], causal=True).transpose(1, 2).reshape(B, T, C)
            x = x + self.lin(p + ".attn.out_proj", o)
            n = self.ln(p + ".ln_2", x, 1e-5)
            x = x + self.lin(p + ".mlp.c_proj", F.gelu(self.lin(p + ".mlp.c_fc", n)))
        x = self.ln(pre + ".ln_final", x, 1e-5)
        pooled = x[torch.arange(B), ids.argmax(dim=-1)]  # the end token has the largest id
        return l2_normalize(pooled @ self.P(pre + ".text_projection"))

    # ---- the training objective

    def losses(self, x, ids, hp):
        """Forward in training mode; returns (dict of scalar losses, codes, diagnostics)."""
        enc = self.encoder(x)
        quant_in = self.attn_projection("quant_proj", enc)
        z_st, vq, codes, diag = self.quantize(quant_in, hp.vq_beta)
        post_quant = self.attn_projection("post_quant_proj", z_st)
        recon = self.decoder(post_quant)  # unclamped
        diff = recon - x
        l1 = diff.abs().mean()
        l2 = (diff * diff).mean()
        img = self.image_features(post_quant)
        txt = self.text_features(ids)
        s = self.P("logit_scale").exp()
        logits_img = s * img @ txt.T
        labels = torch.arange(x.shape[0])
        clip = (F.cross_entropy(logits_img, labels) + F.cross_entropy(logits_img.T, labels)) / 2
        total = ((hp.w_l1 * l1 + hp.w_l2 * l2) + hp.w_vq * vq) + hp.w_clip * clip
        out = {"l1": l1, "l2": l2, "vq": vq, "clip": clip, "total": total,
               "exp_logit_scale_used_in_loss": s}
        diag["recon_unclamped"] = recon.detach()
        diag["image_features"] = img.detach()
        diag["text_features"] = txt.detach()
        return out, codes, diag


# ---------------------------------------------------------------- the step


def clip_grad_norm(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_ (L2): total = ||(||g_i||)_i||; coef = min(1,
    max_norm / (total + 1e-6)); returns (total, coef, clipped grads)."""
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    return total, coef, {k: g * coef for k, g in grads.items()}


def adamw_first_step(p0, g, lr, betas, eps, wd):
    """AdamW at step index 1 from zero moments, as torch's single-tensor path computes it."""
    b1, b2 = betas
    p1 = p0 * (1 - lr * wd)
    m = torch.zeros_like(g).lerp(g, 1 - b1)
    v = torch.zeros_like(g) * b2 + (1 - b2) * g * g
    step_size = lr / (1 - b1 ** 1)
    denom = v.sqrt() / math.sqrt(1 - b2 ** 1) + eps
    # this operation order (p1 + (-step_size * m) / denom) is torch's addcdiv_; in float32 it
    # reproduces torch.optim.AdamW(foreach=False) bit for bit
    return p1 + (-step_size) * m / denom


def update_vocab_usage(old, codes_i, vocab_per_codebook, call_index):
    """The usage-statistics buffer of one sub-codebook (statistics only, never used by outputs).

    call_index 0 copies the batch histogram / (B*L); later calls would blend with momentum 0.9
    (calls 1..99) then 0.99 (architecture notes 3.2; only the first call is covered by goldens).
    """
    hist = torch.bincount(codes_i.reshape(-1), minlength=vocab_per_codebook).to(old.dtype)
    hist = hist / codes_i.numel()
    if call_index == 0:
        return hist
    m = 0.9 if call_index < 100 else 0.99
    return old * m + hist * (1 - m)


def train_step(state_dict, cfg, x, ids, hp=None, dtype=torch.float64, usage_call_index=0):
    """One complete training step from a NumPy (float32) state dict.

    Returns a dict with: losses (floats), grads (trainable name -> tensor, before clipping),
    grad_norm, clip_coef, clipped_grads, params_after (every state-dict entry, buffers
    included, in the working dtype), codes, and diagnostics (fp32 margins, working-dtype argmax,
    decay/no-decay lists).
    """
    hp = hp or StepHparams()
    names = list(state_dict)
    p = {}
    for k in names:
        t = torch.tensor(np.asarray(state_dict[k]), dtype=dtype)
        if is_trainable(k):
            t.requires_grad_(True)
        p[k] = t
    model = UniTokTorch(p, cfg)
    xt = torch.tensor(np.asarray(x), dtype=dtype)
    idt = torch.tensor(np.asarray(ids), dtype=torch.int64)
    losses, codes, diag = model.losses(xt, idt, hp)

    trainable = [k for k in names if is_trainable(k)]
    gs = torch.autograd.grad(losses["total"], [p[k] for k in trainable], allow_unused=True)
    grads = {k: (torch.zeros_like(p[k]) if g is None else g.detach())
             for k, g in zip(trainable, gs)}
    total, coef, clipped = clip_grad_norm(grads, hp.clip_grad)

    after = {}
    decay, nodecay = [], []
    G = cfg["num_codebooks"]
    K = cfg["vocab_size"] // G
    for k in names:
        p0 = p[k].detach()
        if k in grads:
            nd = no_decay(k, p0.shape)
            (nodecay if nd else decay).append(k)
            wd = 0.0 if nd else hp.weight_decay
            after[k] = adamw_first_step(p0, clipped[k], hp.lr, hp.betas, hp.eps, wd)
        elif k.endswith(".vocab_usage"):
            i = int(k.split(".")[2])
            after[k] = update_vocab_usage(p0, codes[:, i, :], K, usage_call_index)
        else:  # frozen parameter or zero_k_bias buffer
            after[k] = p0.clone()
    after["logit_scale"] = after["logit_scale"].clamp(0.0, hp.logit_scale_max)

    return {
        "losses": {k: float(v.detach()) for k, v in losses.items()},
        "grads": grads,
        "grad_norm": float(total),
        "clip_coef": float(coef),
        "clipped_grads": clipped,
        "params_after": after,
        "codes": codes,
        "code_margin": diag["code_margin"],
        "codes_working_dtype": diag["codes_working_dtype"],
        "recon_unclamped": diag["recon_unclamped"],
        "decay_params": decay,
        "no_decay_params": nodecay,
        "logit_scale_before": float(p["logit_scale"].detach()),
        "logit_scale_after": float(after["logit_scale"]),
    }
