"""Generate the 'alt' reference data set with the NumPy reference.

Usage:  python make_alt.py [OUT_DIR]        (default: kernels-tests/data/alt in this repo)
        python make_alt.py --check          (regenerate in a temp dir, compare with the committed)

Writes: model.pth (official training-checkpoint container, torch-free), config.json,
images/*.png, input.npy, captions.txt, text_ids.npy, enc_tokens.npy, quant_in.npy, codes.npy,
code_margin.npy, dequant.npy, post_quant.npy, recon.npy, recon/*.png, image_embed.npy,
text_embed.npy, intermediates.safetensors, tolerances.json, README.md, SHA256SUMS.

Deterministic: seeded NumPy PCG64 weights, scikit-image sample photos, Pillow BICUBIC resize.
Needs numpy, pillow, scikit-image, regex (and ftfy, optional) and the CLIP BPE merges file
(see clip_tokenizer.find_vocab).
"""
import collections
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import alt_model  # noqa: E402
import clip_tokenizer  # noqa: E402
import torchzip  # noqa: E402
import unitok_ref  # noqa: E402

# (skimage.data loader, caption, licence statement from scikit-image's data documentation)
IMAGES = [
    ("chelsea", "a photo of a cat.",
     "Chelsea the cat; no copyright restrictions, CC0 by the photographer (Stefan van der Walt)"),
    ("rocket", "a rocket launching into the sky.",
     "launch photo of DSCOVR on Falcon 9, captured by SpaceX and released in the public domain"),
]
FLOAT_OUTPUTS = ["enc_tokens", "quant_in", "dequant", "post_quant", "recon", "image_embed",
                 "text_embed", "code_margin"]
# intermediates left out to keep the folder small (they are bracketed by up_conv3.0 / up_conv4)
SKIP_INTERMEDIATES = {"decoder.up_conv3.1", "decoder.up_conv3.2"}


def round_up_125(x):
    """Smallest 1/2/5 x 10^k that is >= x."""
    e = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        v = m * 10.0 ** e
        if v >= x * (1 - 1e-12):
            return float(f"{v:.0e}")
    raise AssertionError


def suggested_atol(err):
    return round_up_125(max(1e-5, 20.0 * err))


def load_image(name, size):
    from PIL import Image
    import skimage.data
    arr = getattr(skimage.data, name)()
    assert arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8, (name, arr.shape)
    h, w = arr.shape[:2]
    s = min(h, w)
    left, top = (w - s) // 2, (h - s) // 2
    box = (left, top, left + s, top + s)
    img = Image.fromarray(arr).crop(box).resize((size, size), Image.BICUBIC)
    return img, (w, h), box


def write_safetensors(path, tensors, metadata=None):
    header = {}
    offset = 0
    blobs = []
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k], dtype="<f4")
        b = a.tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    if metadata:
        header["__metadata__"] = metadata
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((-len(hb)) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(hb)))
        fh.write(hb)
        for b in blobs:
            fh.write(b)


def save_npy(path, a):
    np.save(path, np.ascontiguousarray(a), allow_pickle=False)


DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "..", "kernels-tests", "data", "alt"))


def check_committed():
    """Regenerate into a temporary folder and compare with the committed files' checksums."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.abspath(__file__), tmp], check=True,
                       stdout=subprocess.DEVNULL)
        new = open(os.path.join(tmp, "SHA256SUMS")).read()
        new_readme = open(os.path.join(tmp, "README.md")).read()
    # train_step/ is written by make_alt_train_step.py into the same SHA256SUMS; not compared here
    old = "".join(ln for ln in open(os.path.join(DEFAULT_OUT, "SHA256SUMS")).readlines()
                  if not ln.split("  ", 1)[1].startswith("train_step/"))
    old_readme = open(os.path.join(DEFAULT_OUT, "README.md")).read()
    same = new == old and new_readme == old_readme
    print("regenerated data identical to the committed files" if same else
          "regenerated data DIFFERS from the committed files")
    return 0 if same else 1


def main():
    if sys.argv[1:] == ["--check"]:
        sys.exit(check_committed())
    out_dir = os.path.normpath(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "recon"), exist_ok=True)
    cfg = dict(alt_model.ALT_CONFIG)
    unitok_ref.check_config(cfg)
    S = cfg["img_size"]

    # ---- weights and checkpoint
    sd, perturbed, specs = alt_model.build_weights(cfg)
    n_params = sum(v.size for k, v in sd.items()
                   if not (k.endswith("vocab_usage") or k.endswith("zero_k_bias")))
    args = alt_model.checkpoint_args(cfg)
    args["dtype"] = torchzip.torch_dtype("float32")

    def build(tensor):
        unitok = collections.OrderedDict((k, tensor(v)) for k, v in sd.items())
        return {"args": args, "epoch": 0, "iter": 0, "trainer": {"unitok": unitok}}

    pth = os.path.join(out_dir, "model.pth")
    torchzip.save_checkpoint(pth, build, folder="alt")
    back = torchzip.load_checkpoint(pth)
    assert list(back["trainer"]["unitok"].keys()) == list(sd.keys())
    for k, v in sd.items():
        b = back["trainer"]["unitok"][k]
        assert b.dtype == np.float32 and b.shape == v.shape and np.array_equal(b, v), k
    for k, v in cfg.items():
        assert back["args"][k] == v, k
    with open(os.path.join(out_dir, "config.json"), "w") as fh:
        json.dump(alt_model.ALT_CONFIG, fh, indent=2)
        fh.write("\n")

    # ---- inputs
    pngs, sources = [], []
    for name, _cap, _lic in IMAGES:
        img, src_size, box = load_image(name, S)
        img.save(os.path.join(out_dir, "images", name + ".png"))
        pngs.append(np.asarray(img, dtype=np.uint8))
        sources.append((name, src_size, box))
    # reload the PNGs so the tensors are exactly what the files hold
    from PIL import Image
    pix = np.stack([np.asarray(Image.open(os.path.join(out_dir, "images", n + ".png")).convert("RGB"))
                    for n, _, _ in IMAGES])
    assert np.array_equal(pix, np.stack(pngs))
    x = (pix.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x, dtype=np.float32)
    captions = [c for _, c, _ in IMAGES]
    tok = clip_tokenizer.ClipTokenizer()
    ids = tok.tokenize(captions, cfg["text_context_length"])
    save_npy(os.path.join(out_dir, "input.npy"), x)
    save_npy(os.path.join(out_dir, "text_ids.npy"), ids)
    with open(os.path.join(out_dir, "captions.txt"), "w") as fh:
        fh.write("\n".join(captions) + "\n")

    # ---- float64 reference
    ref = unitok_ref.UniTokRef(sd, cfg, np.float64)
    rec64 = {}
    o64 = ref.forward(x, ids, rec=rec64)
    codes = o64["codes"]
    f64_code_mismatch = int((o64["codes_working_dtype"] != codes).sum())
    # ---- float32 re-run (same codes fed downstream) to size the tolerances
    ref32 = unitok_ref.UniTokRef(sd, cfg, np.float32)
    rec32 = {}
    o32 = ref32.forward(x, ids, codes_override=codes, rec=rec32)
    f32_code_mismatch = int((o32["codes"] != codes).sum())

    for k in FLOAT_OUTPUTS:
        save_npy(os.path.join(out_dir, k + ".npy"), o64[k].astype(np.float32))
    save_npy(os.path.join(out_dir, "codes.npy"), codes.astype(np.int64))
    for b, (name, _, _) in enumerate(IMAGES):
        r = np.clip(np.round((o64["recon"][b].transpose(1, 2, 0) + 1.0) * 127.5), 0, 255)
        Image.fromarray(r.astype(np.uint8)).save(os.path.join(out_dir, "recon", name + ".png"))
    inter = {k: v.astype(np.float32) for k, v in rec64.items() if k not in SKIP_INTERMEDIATES}
    write_safetensors(os.path.join(out_dir, "intermediates.safetensors"), inter,
                      {"unitok_config": json.dumps(alt_model.ALT_CONFIG)})

    # ---- tolerances
    tol = collections.OrderedDict()
    for k in FLOAT_OUTPUTS:
        ref_v = o64[k].astype(np.float64)
        err = float(np.abs(o32[k].astype(np.float64) - ref_v).max())
        tol[k] = {"ref_abs_max": float(np.abs(ref_v).max()), "fp32_vs_fp64_max_abs_err": err,
                  "suggested_atol": suggested_atol(err)}
    tol["intermediates"] = collections.OrderedDict()
    for k in inter:
        ref_v = rec64[k]
        err = float(np.abs(rec32[k].astype(np.float64) - ref_v).max())
        tol["intermediates"][k] = {"ref_abs_max": float(np.abs(ref_v).max()),
                                   "fp32_vs_fp64_max_abs_err": err,
                                   "suggested_atol": suggested_atol(err)}
    margin = o64["code_margin"]
    tol["codes"] = {
        "rule": "exact match required wherever code_margin >= 1e-5",
        "min_margin": float(margin.min()),
        "count_margin_below_1e_5": int((margin < 1e-5).sum()),
        "count_margin_below_1e_4": int((margin < 1e-4).sum()),
        "fp32_vs_fp64_code_mismatches": f32_code_mismatch,
        "fp32_argmax_vs_fp64_argmax_mismatches": f64_code_mismatch,
    }
    tol["method"] = ("fp32 re-run of the NumPy reference (downstream of the quantiser fed the fp64 "
                     "codes); suggested_atol = max(1e-5, 20 x fp32-vs-fp64 max abs error), rounded "
                     "up to 1/2/5 x 10^k")
    with open(os.path.join(out_dir, "tolerances.json"), "w") as fh:
        json.dump(tol, fh, indent=2)
        fh.write("\n")

    write_readme(out_dir, cfg, n_params, len(sd), len(perturbed), sources, captions, ids, o64,
                 tol, inter)
    files = sorted(os.path.relpath(os.path.join(d, f), out_dir)
                   for d, _, fs in os.walk(out_dir) for f in fs
                   if f not in ("SHA256SUMS", "README.md"))
    with open(os.path.join(out_dir, "SHA256SUMS"), "w") as fh:
        for f in files:
            h = hashlib.sha256(open(os.path.join(out_dir, f), "rb").read()).hexdigest()
            fh.write(f"{h}  {f}\n")
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in files + ["SHA256SUMS", "README.md"])
    print(f"wrote {len(files) + 2} files, {total / 1e6:.2f} MB, to {out_dir}")
    print(f"parameters {n_params:,}; codes min margin {margin.min():.3e}; "
          f"fp32 code mismatches {f32_code_mismatch}; fp64-argmax mismatches {f64_code_mismatch}")
    for k in FLOAT_OUTPUTS:
        print(f"  {k:12s} fp32-vs-fp64 {tol[k]['fp32_vs_fp64_max_abs_err']:.2e} "
              f"atol {tol[k]['suggested_atol']:g}")


def write_readme(out_dir, cfg, n_params, n_tensors, n_perturbed, sources, captions, ids, o64, tol,
                 inter):
    B = len(captions)
    L = (cfg["img_size"] // 16) ** 2
    G = cfg["num_codebooks"]
    lines = []
    w = lines.append
    w("# UniTok reference data: alt (second configuration)")
    w("")
    w("Generated by `tools/reference/make_alt.py` with the independent NumPy reference")
    w("(`tools/reference/unitok_ref.py`, float64), which reproduces the official tiny64 goldens to")
    w("within 3.4e-06 (see `tools/reference/README.md`). Not produced by the official PyTorch code.")
    w("Every size knob of the architecture differs from tiny64 (table in that README); the four")
    w("width ratios that the reference hard-codes (GeGLU 2, AttnProjection MLP 2, text MLP 4,")
    w("conv expansion 4) keep their reference values.")
    w("")
    w("## Configuration (`config.json`, also key by key in `model.pth` args)")
    w("")
    w("```")
    w(json.dumps(cfg))
    w("```")
    w("")
    w(f"Parameters: {n_params:,} ({n_tensors} state-dict entries including the buffers "
      f"`vocab_usage` and `zero_k_bias`). {n_perturbed} tensors (every LayerNorm weight/bias and "
      f"every bias) carry N(0, 0.05^2) noise on top of the reference initialisation; "
      f"`encoder.pos_embed` and `zero_k_bias` are exactly zero, `logit_scale` = ln(1/0.07), "
      f"`vocab_usage` is zero.")
    w("")
    w("`model.pth` is the official training-checkpoint container: a stored (uncompressed) zip with "
      "entries under the folder `alt/` (`alt/data.pkl`, `alt/data/<n>`, `alt/byteorder`, "
      "`alt/version`), pickle protocol 2 of `{'args': OrderedDict, 'epoch': 0, 'iter': 0, "
      "'trainer': {'unitok': OrderedDict(state_dict)}}`, tensors as "
      "`torch._utils._rebuild_tensor_v2` over `torch.FloatStorage`, little-endian float32. "
      "It was written without torch, so it has no `.data/serialization_id` entry.")
    w("")
    w("## Inputs")
    w("")
    w("| batch | image | source (w, h) | square crop box | caption | ids |")
    w("|---|---|---|---|---|---|")
    for b, ((name, size, box), cap) in enumerate(zip(sources, captions)):
        n = int((ids[b] != 0).sum())
        w(f"| {b} | `images/{name}.png` | skimage `{name}` {size} | {box} | \"{cap}\" | "
          f"`{ids[b, :n].tolist()}` then zeros |")
    w("")
    w(f"Images: central square, Pillow `resize(({cfg['img_size']}, {cfg['img_size']}), BICUBIC)`, "
      "8-bit RGB PNG. `input.npy` = float32 `png / 127.5 - 1`, NCHW. `text_ids.npy`: int64 "
      "(B, 77), OpenAI CLIP BPE.")
    w("")
    w("## Outputs (float64 reference, stored as float32)")
    w("")
    w("| file | dtype | shape | max abs | fp32-vs-fp64 err | suggested atol |")
    w("|---|---|---|---|---|---|")
    for k in FLOAT_OUTPUTS:
        a = o64[k]
        t = tol[k]
        w(f"| `{k}.npy` | float32 | {list(a.shape)} | {t['ref_abs_max']:.3g} | "
          f"{t['fp32_vs_fp64_max_abs_err']:.2e} | {t['suggested_atol']:g} |")
    w(f"| `codes.npy` | int64 | {[B, G, L]} | | | exact |")
    w("")
    w("- `codes.npy`: layout (batch, sub-codebook, token), token = row * "
      f"{cfg['img_size'] // 16} + column; argmax on float32 similarities like the reference. "
      f"Smallest `code_margin` {tol['codes']['min_margin']:.3e}; "
      f"{tol['codes']['count_margin_below_1e_4']} codes below 1e-4; the float32 re-run and the "
      "float64 argmax pick the same codes everywhere." if tol['codes']['fp32_vs_fp64_code_mismatches'] == 0
      and tol['codes']['fp32_argmax_vs_fp64_argmax_mismatches'] == 0 else
      "- `codes.npy`: see tolerances.json for code mismatches between precisions.")
    w("- `dequant`, `post_quant`, `recon`, `image_embed` come from `codes.npy` (the exact code path "
      "`idx_to_img`); `recon` is clamped to [-1, 1]; `recon/*.png` = round((recon + 1) * 127.5).")
    w("- `intermediates.safetensors`: same keys and layouts as the tiny64 goldens' file "
      f"({len(inter)} tensors; `decoder.up_conv3.1` and `.2` left out for size).")
    w("- Tolerances: `tolerances.json` (method inside; per output and per intermediate).")
    w("")
    w("## Image licences (scikit-image data documentation)")
    w("")
    for name, cap, lic in IMAGES:
        w(f"- `{name}`: {lic}.")
    w("")
    with open(os.path.join(out_dir, "README.md"), "w") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    main()
