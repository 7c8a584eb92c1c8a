"""Write one reference training step for the 'alt' configuration (kernels-tests/data/alt).

Usage:  python make_alt_train_step.py [--out DIR]   (default: kernels-tests/data/alt/train_step)

Runs train_ref.train_step (PyTorch, float64) from the alt checkpoint ``model.pth`` (read with
the torch-free torchzip reader) on the alt images (``images/*.png`` in the order of
``captions.txt``, converted as ``input.npy`` was: float32 png / 127.5 - 1, NCHW) and
``text_ids.npy``, with lr 1e-3 (constant), betas (0.9, 0.95), eps 1e-6, weight decay 0.02 and
gradient clipping at 10 (the script falls back to 1.0 if the global norm were below 10, so that
clipping is active).  A float32 run of the same reference sizes the tolerances.

Writes into the output folder: hparams.json, losses.json, grads.safetensors,
params_after.safetensors, manifest.jsonl, tolerances.json, README.md; and, when writing the
default folder, refreshes the train_step/ lines of kernels-tests/data/alt/SHA256SUMS.

The text token table (49408 rows) is not stored densely: both safetensors files hold only the
rows of the ids that occur in the batch (up to and including each end token) as
``text_encoder.token_embedding.weight.rows`` (float32 [R, W]) and ``...weight.row_ids``
(int64 [R]).  Every other row has zero gradient and after the step equals p0 * (1 - lr * wd).

Needs torch, numpy, safetensors and pillow.
"""
import argparse
import collections
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torchzip  # noqa: E402
import train_ref  # noqa: E402

ALT_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "kernels-tests", "data", "alt"))
DEFAULT_OUT = os.path.join(ALT_DIR, "train_step")
# batch order: the order of captions.txt (make_alt.py's IMAGES)
IMAGE_NAMES = ["chelsea", "rocket"]
TOKEN_TABLE = "text_encoder.token_embedding.weight"
END_TOKEN = 49407
TINY_GRAD = 1e-5  # params_after tolerance tiers by |clipped gradient|, as in the goldens

HPARAMS = train_ref.StepHparams(lr=1e-3, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.02,
                                clip_grad=10.0)
FALLBACK_CLIP = 1.0

# tiny64 golden suggestions (their README section 7): the suggested tolerances never go below these
GOLDEN_TOL = {"losses_rtol": 2e-6, "grad_norm_rtol": 5e-6, "grads_rel": 5e-5,
              "params_after_atol_large": 5e-6, "params_after_atol_tiny": 2e-4}


def round_up_125(x):
    """Smallest 1/2/5 x 10^k that is >= x."""
    if x <= 0:
        return 0.0
    e = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        v = m * 10.0 ** e
        if v >= x * (1 - 1e-12):
            return float(f"{v:.0e}")
    raise AssertionError


def suggest(measured, golden):
    """max(golden suggestion, 20 x measured rounded up to 1/2/5 x 10^k)."""
    return max(golden, round_up_125(20.0 * measured))


def load_inputs(alt_dir):
    """Images in captions.txt order, converted exactly like input.npy; ids from text_ids.npy."""
    from PIL import Image
    captions = open(os.path.join(alt_dir, "captions.txt")).read().splitlines()
    assert len(captions) == len(IMAGE_NAMES), captions
    pix = np.stack([np.asarray(Image.open(os.path.join(alt_dir, "images", n + ".png")).convert("RGB"))
                    for n in IMAGE_NAMES])
    x = (pix.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x, dtype=np.float32)
    ref = np.load(os.path.join(alt_dir, "input.npy"))
    assert np.array_equal(x, ref), "PNG conversion does not reproduce input.npy (batch order?)"
    ids = np.load(os.path.join(alt_dir, "text_ids.npy"))
    assert ids.shape[0] == len(captions)
    return x, ids, captions


def token_rows(ids):
    """Sorted ids that occur at or before the end token of some row (the rows with gradient)."""
    used = set()
    for row in ids:
        end = int(np.argmax(row == END_TOKEN))
        assert row[end] == END_TOKEN
        used.update(int(t) for t in row[:end + 1])
    return np.array(sorted(used), dtype=np.int64)


def compact(tensors, row_ids):
    """float32 copies; the token table replaced by its used rows plus their ids."""
    out = collections.OrderedDict()
    for k, v in tensors.items():
        a = v.detach().double().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        if k == TOKEN_TABLE:
            out[k + ".rows"] = np.ascontiguousarray(a[row_ids], dtype=np.float32)
            out[k + ".row_ids"] = row_ids.copy()
        else:
            out[k] = np.ascontiguousarray(a, dtype=np.float32)
    return out


def measure_fp32_vs_fp64(r64, r32, coef):
    """fp32-vs-fp64 differences of this reference, in the goldens' terms."""
    m = {}
    m["losses_max_rel_err"] = max(abs(r32["losses"][k] - r64["losses"][k]) / abs(r64["losses"][k])
                                  for k in ("l1", "l2", "vq", "clip", "total"))
    m["grad_norm_rel_err"] = abs(r32["grad_norm"] - r64["grad_norm"]) / r64["grad_norm"]
    worst, name = 0.0, None
    for k, g64 in r64["grads"].items():
        g64 = g64.numpy()
        scale = np.abs(g64).max()
        if scale == 0:
            continue
        e = np.abs(r32["grads"][k].double().numpy() - g64).max() / scale
        if e > worst:
            worst, name = float(e), k
    m["grads_worst_err_relative_to_tensor_absmax"] = worst
    m["grads_worst_tensor"] = name
    large = tiny = usage = 0.0
    for k, p64 in r64["params_after"].items():
        err = np.abs(r32["params_after"][k].double().numpy() - p64.numpy())
        if k in r64["grads"]:
            gclip = np.abs(r64["grads"][k].numpy()) * coef
            if (gclip >= TINY_GRAD).any():
                large = max(large, float(err[gclip >= TINY_GRAD].max()))
            if (gclip < TINY_GRAD).any():
                tiny = max(tiny, float(err[gclip < TINY_GRAD].max()))
        elif k.endswith(".vocab_usage"):
            # compared as stored: both rounded to float32 (count / (B*L) is not exact in binary)
            e32 = np.abs(r32["params_after"][k].float().numpy() - p64.float().numpy())
            usage = max(usage, float(e32.max()))
    m["params_after_max_abs_err_clipped_grad_ge_1e_5"] = large
    m["params_after_max_abs_err_clipped_grad_lt_1e_5"] = tiny
    m["vocab_usage_max_abs_err_as_float32"] = usage
    m["code_mismatches"] = int((r32["codes"] != r64["codes"]).sum())
    return m


def hparams_json(hp, res, n_batch, cfg):
    decay, nodecay = res["decay_params"], res["no_decay_params"]
    group = {"lr": hp.lr, "betas": list(hp.betas), "eps": hp.eps, "amsgrad": False,
             "maximize": False, "foreach": None, "fused": False}
    return collections.OrderedDict([
        ("produced_by", "tools/reference/make_alt_train_step.py (our PyTorch reference "
                        "train_ref.py in float64; not the official code)"),
        ("optimizer", "AdamW, torch single-tensor formula (adamw_step_index 1); "
                      "reproduces torch.optim.AdamW(foreach=False)"),
        ("lr", hp.lr),
        ("lr_schedule", "constant (no warm-up / cosine scheduler applied)"),
        ("betas", list(hp.betas)),
        ("eps", hp.eps),
        ("weight_decay", hp.weight_decay),
        ("amsgrad", False),
        ("maximize", False),
        ("adamw_step_index", 1),
        ("adamw_update", "p <- p*(1 - lr*wd_group); m = (1-b1)*g; v = (1-b2)*g*g; "
                         "p <- p - (lr/(1-b1^1)) * m / (sqrt(v)/sqrt(1-b2^1) + eps)"),
        ("grad_clip_max_norm", hp.clip_grad),
        ("clip_grad", hp.clip_grad),
        ("grad_clip", "torch.nn.utils.clip_grad_norm_ over all parameters with a grad: "
                      "total = ||(||g_i||_2)_i||_2; coef = min(1, max_norm/(total+1e-6)); "
                      "g_i *= coef"),
        ("logit_scale_clamp", [0.0, hp.logit_scale_max]),
        ("loss_weights", collections.OrderedDict([
            ("l1", hp.w_l1), ("l2", hp.w_l2), ("lpips", 0.0), ("vq", hp.w_vq),
            ("entropy", 0.0), ("clip", hp.w_clip), ("gan", 0.0)])),
        ("loss_sum_order", f"total = (({hp.w_l1}*l1 + {hp.w_l2}*l2) + {hp.w_vq}*vq) + "
                           f"{hp.w_clip}*clip"),
        ("vq_beta", hp.vq_beta),
        ("clip_loss", "(CE(s*I@T^T, arange(B)) + CE(s*T@I^T, arange(B)))/2, s = exp(logit_scale), "
                      "I/T L2-normalised"),
        ("vae_batch", n_batch),
        ("global_iter", 0),
        ("grad_accumulation", 1),
        ("drop_path", cfg["drop_path"]),
        ("train_mode", True),
        ("arithmetic", "float64 (stored as float32)"),
        ("no_decay_rule", "ndim < 2 or name contains any of "
                          "('norm_scale','bn','ln','bias','logit_scale')"),
        ("no_decay_params", nodecay),
        ("decay_params", decay),
        ("frozen_params", list(train_ref.FROZEN)),
        ("param_groups", [dict(group, weight_decay=hp.weight_decay, num_params=len(decay)),
                          dict(group, weight_decay=0.0, num_params=len(nodecay))]),
    ])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    out_dir = os.path.normpath(args.out)
    os.makedirs(out_dir, exist_ok=True)

    cfg = json.load(open(os.path.join(ALT_DIR, "config.json")),
                    object_pairs_hook=collections.OrderedDict)
    ck = torchzip.load_checkpoint(os.path.join(ALT_DIR, "model.pth"))
    sd = ck["trainer"]["unitok"]
    for k, v in cfg.items():
        assert ck["args"][k] == v, (k, ck["args"][k], v)
    x, ids, captions = load_inputs(ALT_DIR)
    row_ids = token_rows(ids)

    hp = HPARAMS
    r64 = train_ref.train_step(sd, cfg, x, ids, hp, dtype=torch.float64)
    if r64["grad_norm"] <= hp.clip_grad:
        hp = train_ref.StepHparams(**dict(vars(HPARAMS), clip_grad=FALLBACK_CLIP))
        r64 = train_ref.train_step(sd, cfg, x, ids, hp, dtype=torch.float64)
    assert r64["clip_coef"] < 1.0, "clipping must be active"
    r32 = train_ref.train_step(sd, cfg, x, ids, hp, dtype=torch.float32)

    codes_ref = np.load(os.path.join(ALT_DIR, "codes.npy"))
    assert np.array_equal(r64["codes"].numpy(), codes_ref), "codes differ from alt/codes.npy"
    assert int((r64["codes_working_dtype"] != r64["codes"]).sum()) == 0
    # the training-path reconstruction equals the NumPy reference's decoder output up to the
    # rounding of the straight-through sum (the goldens saw 1.4e-6 on tiny64)
    with open(os.path.join(ALT_DIR, "intermediates.safetensors"), "rb") as fh:
        inter_meta = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))["__metadata__"]
    assert json.loads(inter_meta["unitok_config"]) == cfg
    recon_np = load_file(os.path.join(ALT_DIR, "intermediates.safetensors"))["decoder.up_conv4"]
    recon_err = float(np.abs(r64["recon_unclamped"].numpy() - recon_np).max())
    assert recon_err < 1e-5, recon_err

    # the token table: gradient only in row_ids, none elsewhere
    g_tok = r64["grads"][TOKEN_TABLE].numpy()
    others = np.setdiff1d(np.arange(g_tok.shape[0]), row_ids)
    assert not g_tok[others].any(), "token rows outside the batch ids have gradient"
    assert np.abs(g_tok[row_ids]).sum(axis=1).min() > 0

    meta = {"unitok_config": json.dumps(cfg)}
    grads = compact(r64["grads"], row_ids)
    after = compact(r64["params_after"], row_ids)
    save_file(grads, os.path.join(out_dir, "grads.safetensors"), metadata=meta)
    save_file(after, os.path.join(out_dir, "params_after.safetensors"), metadata=meta)
    for fname, want in (("grads.safetensors", grads), ("params_after.safetensors", after)):
        back = load_file(os.path.join(out_dir, fname))
        assert set(back) == set(want) and all(np.array_equal(back[k], want[k]) for k in want)

    coef = r64["clip_coef"]
    losses = collections.OrderedDict(
        [(k, r64["losses"][k]) for k in ("l1", "l2", "vq", "clip", "total")]
        + [("grad_global_norm_before_clip", r64["grad_norm"]),
           ("clip_coefficient", coef),
           ("grads_were_clipped", coef < 1.0),
           ("logit_scale_before", r64["logit_scale_before"]),
           ("logit_scale_after", r64["logit_scale_after"]),
           ("exp_logit_scale_used_in_loss", r64["losses"]["exp_logit_scale_used_in_loss"])])
    with open(os.path.join(out_dir, "losses.json"), "w") as fh:
        json.dump(losses, fh, indent=2)
        fh.write("\n")
    with open(os.path.join(out_dir, "hparams.json"), "w") as fh:
        json.dump(hparams_json(hp, r64, x.shape[0], cfg), fh, indent=2)
        fh.write("\n")
    with open(os.path.join(out_dir, "manifest.jsonl"), "w") as fh:
        for name, cap in zip(IMAGE_NAMES, captions):
            fh.write(json.dumps({"image": f"../images/{name}.png", "text": cap}) + "\n")

    m = measure_fp32_vs_fp64(r64, r32, coef)
    tol = collections.OrderedDict([
        ("method", "float32 run of the same PyTorch reference against its float64 run; "
                   "suggested = max(tiny64 golden suggestion, 20 x measured rounded up to "
                   "1/2/5 x 10^k)"),
        ("measured", m),
        ("losses_suggested_rtol", suggest(m["losses_max_rel_err"], GOLDEN_TOL["losses_rtol"])),
        ("grad_global_norm_suggested_rtol", suggest(m["grad_norm_rel_err"],
                                                    GOLDEN_TOL["grad_norm_rtol"])),
        ("grads_suggested_rel", suggest(m["grads_worst_err_relative_to_tensor_absmax"],
                                        GOLDEN_TOL["grads_rel"])),
        ("params_after_suggested_atol_if_clipped_grad_ge_1e_5",
         suggest(m["params_after_max_abs_err_clipped_grad_ge_1e_5"],
                 GOLDEN_TOL["params_after_atol_large"])),
        ("params_after_suggested_atol_if_clipped_grad_lt_1e_5",
         suggest(m["params_after_max_abs_err_clipped_grad_lt_1e_5"],
                 GOLDEN_TOL["params_after_atol_tiny"])),
    ])
    tol["grads_suggested_tolerance"] = (f"per tensor: max|g - g_ref| <= {tol['grads_suggested_rel']:g}"
                                        " * max|g_ref| + 1e-8")
    n_large = sum(int((np.abs(g.numpy()) * coef >= TINY_GRAD).sum()) for g in r64["grads"].values())
    n_total = sum(int(g.numel()) for g in r64["grads"].values())
    tol["elements_clipped_grad_ge_1e_5"] = n_large
    tol["elements_clipped_grad_lt_1e_5"] = n_total - n_large
    with open(os.path.join(out_dir, "tolerances.json"), "w") as fh:
        json.dump(tol, fh, indent=2)
        fh.write("\n")

    write_readme(out_dir, cfg, hp, losses, tol, row_ids, grads, after, r64)
    if out_dir == DEFAULT_OUT:
        refresh_sha256sums()

    print(f"wrote {out_dir}")
    print(f"  total {losses['total']:.9f}; grad norm {r64['grad_norm']:.6f}; clip {hp.clip_grad:g} "
          f"-> coef {coef:.8f}; token rows {row_ids.tolist()}")
    print(f"  training-path recon vs the NumPy reference's decoder.up_conv4: {recon_err:.2e}")
    for k, v in m.items():
        print(f"  fp32 vs fp64 {k}: {v}")


def file_sizes(out_dir):
    return {f: os.path.getsize(os.path.join(out_dir, f)) for f in sorted(os.listdir(out_dir))}


def refresh_sha256sums():
    """Rewrite alt/SHA256SUMS with make_alt.py's rule (every file below alt/ except files named
    SHA256SUMS or README.md), keeping its existing lines and refreshing the train_step/ ones."""
    path = os.path.join(ALT_DIR, "SHA256SUMS")
    lines = [ln for ln in open(path).read().splitlines() if not ln.split("  ", 1)[1].startswith("train_step/")]
    for f in sorted(os.listdir(DEFAULT_OUT)):
        if f in ("SHA256SUMS", "README.md"):
            continue
        h = hashlib.sha256(open(os.path.join(DEFAULT_OUT, f), "rb").read()).hexdigest()
        lines.append(f"{h}  train_step/{f}")
    lines.sort(key=lambda ln: ln.split("  ", 1)[1])
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def write_readme(out_dir, cfg, hp, losses, tol, row_ids, grads, after, r64):
    m = tol["measured"]
    W = cfg["text_width"]
    n_rows = len(row_ids)
    lines = []
    w = lines.append
    w("# alt: one reference training step")
    w("")
    w("One complete UniTok training step (loss, gradients, gradient clipping, AdamW update) for the")
    w("`alt` configuration one folder up (96 px, 2 sub-codebooks of width 16; its `README.md`). The")
    w("Rust CLI can train one step on `manifest.jsonl` from `../model.pth` and compare its dumped")
    w("gradients and parameters with these files.")
    w("")
    w("**Provenance.** Written by `tools/reference/make_alt_train_step.py` with our PyTorch reference")
    w("`tools/reference/train_ref.py` in float64, not by the official code. That reference is a")
    w("port of our NumPy forward reference to torch ops (autograd gives the gradients), written from")
    w("the goldens' specification of the step. On the official tiny64 train-step goldens it agrees")
    w("with the official float32 step as closely as the official code run in float64 does (numbers")
    w("in `tools/reference/README.md`).")
    w("")
    w("Command (from the repository root; needs torch, numpy, safetensors, pillow):")
    w("")
    w("```")
    w("python3 tools/reference/make_alt_train_step.py")
    w("```")
    w("")
    w("## The step")
    w("")
    w("- Inputs: `../images/chelsea.png`, `../images/rocket.png` (batch order of `../captions.txt`),")
    w("  converted like `../input.npy` (float32 png / 127.5 - 1, NCHW, checked equal to it), and")
    w("  `../text_ids.npy`. All images are in the reconstruction batch. No augmentation, no shuffle.")
    w(f"- AdamW step 1: lr {hp.lr:g} (constant, no warm-up), betas {tuple(hp.betas)}, eps {hp.eps:g},")
    w(f"  weight decay {hp.weight_decay:g} with the no-decay rule (ndim < 2 or name contains")
    w("  norm_scale/bn/ln/bias/logit_scale); `encoder.pos_embed` is frozen.")
    w(f"- Gradient clipping at global norm **{hp.clip_grad:g}**. The gradient norm is "
      f"{losses['grad_global_norm_before_clip']:.4f}, so clipping")
    w(f"  **is active**: coefficient {hp.clip_grad:g} / (norm + 1e-6) = {losses['clip_coefficient']:.8f}.")
    w(f"- logit_scale clamped to [0, ln 100] after the step ({losses['logit_scale_before']:.7f} ->"
      f" {losses['logit_scale_after']:.7f}; the clamp does not bite).")
    w("- Losses, as in the goldens (README section 6): l1/l2 on the unclamped decoder output,")
    w(f"  straight-through z + sg[q - z], vq = mean over sub-codebooks of {hp.vq_beta:g} *")
    w("  mean((sg[q] - z)^2) + mean((q - sg[z])^2), symmetric InfoNCE with s = exp(logit_scale);")
    w(f"  total = (({hp.w_l1:g}*l1 + {hp.w_l2:g}*l2) + {hp.w_vq:g}*vq) + {hp.w_clip:g}*clip. No LPIPS, no GAN.")
    w("- The codes equal `../codes.npy` (float32 argmax; the float64 argmax agrees everywhere).")
    w("")
    w("Equivalent CLI run:")
    w("")
    w("```")
    w("unitok train --data kernels-tests/data/alt/train_step/manifest.jsonl \\")
    w("  --init kernels-tests/data/alt/model.pth --steps 1 --batch-size 2 --no-augment --no-shuffle \\")
    w(f"  --lr {hp.lr:g} --warmup-steps 0 --weight-decay {hp.weight_decay:g} --clip-grad {hp.clip_grad:g} --dump-grads ...")
    w("```")
    w("")
    w("## Files")
    w("")
    w("| file | what it is |")
    w("|---|---|")
    w("| `losses.json` | l1, l2, vq, clip, total, grad_global_norm_before_clip, clip_coefficient, "
      "grads_were_clipped, logit_scale_before/after, exp_logit_scale_used_in_loss (float64 values) |")
    w("| `hparams.json` | optimiser and loss settings (field names of the golden `hparams.json`; "
      "`clip_grad` repeats `grad_clip_max_norm`), the no-decay rule, the decay "
      f"({len(r64['decay_params'])}) and no-decay ({len(r64['no_decay_params'])}) parameter lists, "
      "the frozen list |")
    w(f"| `grads.safetensors` | float32, the gradient of every trainable parameter **before** "
      f"clipping, official keys ({len(grads) - 1} tensors, token table compacted) |")
    w(f"| `params_after.safetensors` | float32, the complete state dict after the step, buffers "
      f"included ({len(after) - 1} entries, token table compacted) |")
    w("| `manifest.jsonl` | the two training examples, `{\"image\": \"../images/<name>.png\", "
      "\"text\": caption}`, paths relative to this folder, in batch order |")
    w("| `tolerances.json` | float32-vs-float64 measurements of the reference and suggested "
      "tolerances (below) |")
    w("")
    w("Both safetensors files carry the metadata entry `unitok_config` (the alt config JSON).")
    w("")
    w(f"**Token table.** `{TOKEN_TABLE}` (49408 x {W}) is not stored densely. Both files hold")
    w(f"`{TOKEN_TABLE}.rows` (float32 [{n_rows}, {W}]) and `{TOKEN_TABLE}.row_ids` (int64 [{n_rows}]):")
    w(f"the {n_rows} ids that occur in the batch up to and including each end token,")
    w(f"`{row_ids.tolist()}`.")
    w("Every other row (including padding id 0, which only occurs after the end token, where the")
    w("causal mask cuts it off from the pooled output) has **exactly zero gradient**, and after the")
    w(f"step equals p0 * (1 - lr * wd) = p0 * (1 - {hp.lr:g} * {hp.weight_decay:g}), with p0 the row "
      "in `../model.pth`.")
    w("")
    w("**Buffers.** `quantizer.codebooks.<i>.vocab_usage` = this batch's code histogram / (B * L)")
    w("(the first training call copies it); `zero_k_bias` and `encoder.pos_embed` are unchanged.")
    w("")
    w("## Tolerances")
    w("")
    w("Measured as in the goldens' README section 7, with our own reference: its float32 run against")
    w("its float64 run. Suggested = the larger of the tiny64 golden suggestion and 20 x the measured")
    w("error rounded up to 1/2/5 x 10^k (a float32 GPU port sums in other orders than torch-CPU).")
    w("")
    w("| quantity | fp32 vs fp64 | suggested |")
    w("|---|---|---|")
    w(f"| losses (relative) | {m['losses_max_rel_err']:.1e} | rtol {tol['losses_suggested_rtol']:g} |")
    w(f"| gradient global norm (relative) | {m['grad_norm_rel_err']:.1e} | "
      f"rtol {tol['grad_global_norm_suggested_rtol']:g} |")
    w(f"| gradients, worst per-tensor max err / max abs value | "
      f"{m['grads_worst_err_relative_to_tensor_absmax']:.1e} (`{m['grads_worst_tensor']}`) | "
      f"max abs err <= {tol['grads_suggested_rel']:g} x max abs value + 1e-8, per tensor |")
    w(f"| params_after where the clipped gradient is >= 1e-5 "
      f"({tol['elements_clipped_grad_ge_1e_5']:,} elements) | "
      f"{m['params_after_max_abs_err_clipped_grad_ge_1e_5']:.1e} | "
      f"atol {tol['params_after_suggested_atol_if_clipped_grad_ge_1e_5']:g} |")
    w(f"| params_after where the clipped gradient is < 1e-5 "
      f"({tol['elements_clipped_grad_lt_1e_5']:,} elements, of which "
      f"{(49408 - n_rows) * W:,} in the token table's gradient-free rows) | "
      f"{m['params_after_max_abs_err_clipped_grad_lt_1e_5']:.1e} | "
      f"atol {tol['params_after_suggested_atol_if_clipped_grad_lt_1e_5']:g} |")
    w(f"| `vocab_usage` (as float32) | {m['vocab_usage_max_abs_err_as_float32']:.1e} | "
      "exact (count / (B * L) rounded to float32) |")
    w(f"| codes | {m['code_mismatches']} mismatches | exact |")
    w("")
    w("As in the goldens, the first Adam step moves an element by about lr * g / (|g| + eps): about")
    w("+-lr where the clipped gradient is well above eps, but sensitive to gradient noise near or")
    w("below eps, hence the two tiers (split by the size of the clipped float64 gradient,")
    w("raw gradient x `clip_coefficient`).")
    w("")
    w("## Sizes")
    w("")
    w("| file | bytes |")
    w("|---|---|")
    for f, n in file_sizes(out_dir).items():
        if f != "README.md":
            w(f"| `{f}` | {n:,} |")
    w("")
    w("The train_step files (this README aside) are listed in `../SHA256SUMS`.")
    w("")
    with open(os.path.join(out_dir, "README.md"), "w") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    main()
