"""Validate train_ref.py (one UniTok training step in PyTorch) against the official goldens.

Usage:  python check_train_step.py [GOLDEN_DIR] [--dtype float64|float32] [--json OUT.json]

GOLDEN_DIR defaults to $UNITOK_GOLDENS or the shared/goldens/tiny64 folder beside the checkout.
Runs one step from model.safetensors on input.npy / text_ids.npy with the golden hparams
(train_step/hparams.json) and compares with train_step/: losses, gradient global norm, clip
coefficient, every gradient (before clipping), every entry of params_after (buffers included),
the decay / no-decay grouping and the codes.  Tolerances are those of the goldens' README
section 7 (tolerances.json "train_step").  Exit status 0 when everything passes.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_goldens  # noqa: E402  (default_dir)
import train_ref  # noqa: E402

LOSS_KEYS = ["l1", "l2", "vq", "clip", "total"]
LOSS_RTOL = 2e-6
NORM_RTOL = 5e-6
GRAD_REL = 5e-5          # per tensor: max|g - g_ref| <= GRAD_REL * max|g_ref| + GRAD_ABS
GRAD_ABS = 1e-8
TINY_GRAD = 1e-5         # params_after tiers split by |clipped reference gradient|
ATOL_TINY = 2e-4
ATOL_LARGE = 5e-6


def hparams_from_json(h):
    w = h["loss_weights"]
    lo, hi = h["logit_scale_clamp"]
    assert lo == 0.0
    return train_ref.StepHparams(lr=h["lr"], betas=tuple(h["betas"]), eps=h["eps"],
                                 weight_decay=h["weight_decay"], clip_grad=h["grad_clip_max_norm"],
                                 w_l1=w["l1"], w_l2=w["l2"], w_vq=w["vq"], w_clip=w["clip"],
                                 vq_beta=h["vq_beta"], logit_scale_max=hi)


def torch_adamw_crosscheck(sd, res, hp, dtype):
    """Max |ours - torch.optim.AdamW(foreach=False)| over all parameters, fed the same clipped
    gradients (a check of adamw_first_step and of the grouping, independent of the goldens)."""
    worst = 0.0
    groups = {"decay": [], "no_decay": []}
    tensors = {}
    for k, g in res["clipped_grads"].items():
        t = torch.tensor(sd[k], dtype=dtype, requires_grad=True)
        t.grad = g.clone()
        tensors[k] = t
        groups["no_decay" if k in set(res["no_decay_params"]) else "decay"].append(t)
    opt = torch.optim.AdamW([{"params": groups["decay"], "weight_decay": hp.weight_decay},
                             {"params": groups["no_decay"], "weight_decay": 0.0}],
                            lr=hp.lr, betas=hp.betas, eps=hp.eps, foreach=False)
    opt.step()
    for k, t in tensors.items():
        ours = res["params_after"][k]
        ref = t.detach()
        if k == "logit_scale":
            ref = ref.clamp(0.0, hp.logit_scale_max)
        worst = max(worst, float((ours - ref).abs().max()))
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("golden_dir", nargs="?", default=None)
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--json", default=None, help="write the measured errors here")
    args = ap.parse_args()
    gdir = args.golden_dir or check_goldens.default_dir()
    tdir = os.path.join(gdir, "train_step")
    dtype = getattr(torch, args.dtype)

    cfg = json.load(open(os.path.join(gdir, "config.json")))
    sd = load_file(os.path.join(gdir, "model.safetensors"))
    x = np.load(os.path.join(gdir, "input.npy"))
    ids = np.load(os.path.join(gdir, "text_ids.npy"))
    gold_codes = np.load(os.path.join(gdir, "codes.npy"))
    hj = json.load(open(os.path.join(tdir, "hparams.json")))
    gl = json.load(open(os.path.join(tdir, "losses.json")))
    gg = load_file(os.path.join(tdir, "grads.safetensors"))
    gp = load_file(os.path.join(tdir, "params_after.safetensors"))
    hp = hparams_from_json(hj)

    res = train_ref.train_step(sd, cfg, x, ids, hp, dtype=dtype)
    ok = True
    report = {"dtype": args.dtype, "torch": torch.__version__, "threads": torch.get_num_threads()}

    def flag(good):
        nonlocal ok
        ok &= bool(good)
        return "ok" if good else "FAIL"

    print(f"train step on {os.path.basename(os.path.normpath(gdir))}, {args.dtype}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    # ---- grouping and codes
    same_groups = (set(res["decay_params"]) == set(hj["decay_params"])
                   and set(res["no_decay_params"]) == set(hj["no_decay_params"]))
    print(f"decay / no-decay groups ({len(res['decay_params'])} / "
          f"{len(res['no_decay_params'])}) equal hparams.json: {flag(same_groups)}")
    codes_equal = bool(np.array_equal(res["codes"].numpy(), gold_codes))
    wd_mismatch = int((res["codes_working_dtype"] != res["codes"]).sum())
    print(f"codes ({gold_codes.size}) equal codes.npy: {flag(codes_equal)}; "
          f"{args.dtype} argmax disagrees with the float32 argmax at {wd_mismatch} places; "
          f"min fp32 margin {float(res['code_margin'].min()):.3e}")
    report.update(groups_equal=same_groups, codes_equal=codes_equal,
                  working_dtype_argmax_mismatches=wd_mismatch)

    # ---- losses
    print("losses (relative error):")
    report["losses"] = {}
    for k in LOSS_KEYS:
        ours, ref = res["losses"][k], gl[k]
        rel = abs(ours - ref) / abs(ref)
        report["losses"][k] = {"ours": ours, "golden": ref, "rel_err": rel}
        print(f"  {k:6s} {ours:.9f} golden {ref:.9f}  rel err {rel:.2e}  {flag(rel <= LOSS_RTOL)}")
    for key, ours in (("grad_global_norm_before_clip", res["grad_norm"]),
                      ("clip_coefficient", res["clip_coef"]),
                      ("logit_scale_after", res["logit_scale_after"]),
                      ("exp_logit_scale_used_in_loss", res["losses"]["exp_logit_scale_used_in_loss"])):
        rel = abs(ours - gl[key]) / abs(gl[key])
        report[key] = {"ours": ours, "golden": gl[key], "rel_err": rel}
        tol = NORM_RTOL if key in ("grad_global_norm_before_clip", "clip_coefficient") else LOSS_RTOL
        print(f"  {key:30s} {ours:.9g} golden {gl[key]:.9g}  rel err {rel:.2e}  {flag(rel <= tol)}")

    # ---- gradients (before clipping)
    keys_equal = set(res["grads"]) == set(gg)
    print(f"gradient keys ({len(gg)}) equal grads.safetensors: {flag(keys_equal)}")
    worst = (0.0, None, 0.0)  # (error / max|g_ref|, name, abs error)
    n_fail = 0
    for k, ref in gg.items():
        ours = res["grads"][k].double().numpy()
        ref = ref.astype(np.float64)
        err = float(np.abs(ours - ref).max())
        scale = float(np.abs(ref).max())
        n_fail += err > GRAD_REL * scale + GRAD_ABS
        rel = err / scale if scale > 0 else (0.0 if err == 0 else math.inf)
        if rel >= worst[0]:
            worst = (rel, k, err)
    print(f"  worst per-tensor max|g - g_ref| / max|g_ref|: {worst[0]:.2e} in {worst[1]} "
          f"(abs {worst[2]:.2e}); tensors over {GRAD_REL:g}*max|g_ref| + {GRAD_ABS:g}: "
          f"{n_fail}  {flag(n_fail == 0 and keys_equal)}")
    report["grads"] = {"worst_rel_to_tensor_absmax": worst[0], "worst_tensor": worst[1],
                       "worst_abs": worst[2], "tensors_failing": int(n_fail)}

    # ---- params after the step (tiers by the clipped reference gradient)
    keys_equal = set(res["params_after"]) == set(gp)
    print(f"params_after keys ({len(gp)}) equal params_after.safetensors: {flag(keys_equal)}")
    coef_ref = gl["clip_coefficient"]
    tiers = {"large": [0.0, None, 0], "tiny": [0.0, None, 0], "unchanged": [0.0, None, 0],
             "buffers": [0.0, None, 0]}
    for k, ref in gp.items():
        ours = res["params_after"][k].double().numpy()
        ref = ref.astype(np.float64)
        err = np.abs(ours - ref)
        if k in gg:
            gclip = np.abs(gg[k].astype(np.float64)) * coef_ref
            parts = (("large", gclip >= TINY_GRAD), ("tiny", gclip < TINY_GRAD))
        elif k.endswith(".vocab_usage"):
            parts = (("buffers", np.ones(ref.shape, dtype=bool)),)
        else:
            parts = (("unchanged", np.ones(ref.shape, dtype=bool)),)
        for tier, mask in parts:
            if mask.any():
                e = float(err[mask].max())
                tiers[tier][2] += int(mask.sum())
                if e >= tiers[tier][0]:
                    tiers[tier][0], tiers[tier][1] = e, k
    limits = {"large": ATOL_LARGE, "tiny": ATOL_TINY, "unchanged": 0.0, "buffers": 0.0}
    report["params_after"] = {}
    for tier, (e, k, n) in tiers.items():
        print(f"  {tier:9s} ({n:,} elements) worst abs error {e:.2e} in {k}  "
              f"(atol {limits[tier]:g})  {flag(e <= limits[tier])}")
        report["params_after"][tier] = {"worst_abs": e, "worst_tensor": k, "elements": n,
                                        "atol": limits[tier]}

    # ---- our AdamW against torch's own, same clipped gradients
    adam_err = torch_adamw_crosscheck(sd, res, hp, dtype)
    print(f"adamw_first_step vs torch.optim.AdamW(foreach=False): max abs diff {adam_err:.2e}  "
          f"{flag(adam_err <= (1e-12 if dtype == torch.float64 else 1e-7))}")
    report["adamw_vs_torch_optim_max_abs"] = adam_err

    report["passed"] = bool(ok)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
