"""Validate the NumPy reference (unitok_ref.py) against the official tiny64 goldens.

Usage:  python check_goldens.py [GOLDEN_DIR] [--json OUT.json]

GOLDEN_DIR defaults to $UNITOK_GOLDENS or ../../shared/goldens/tiny64 relative to the repo.
Loads model.safetensors (and cross-checks model.pth through the torch-free reader), runs the
float64 reference on input.npy / text_ids.npy, and compares every output and every entry of
intermediates.safetensors.  As the goldens' own tolerance method does, the de-quantiser,
post-quant projection, decoder and CLIP-image head are fed the golden codes.
Exit status 0 when every tensor agrees within ATOL and the codes are identical.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torchzip  # noqa: E402
import unitok_ref  # noqa: E402

ATOL = 1e-5
OUTPUTS = ["enc_tokens", "quant_in", "dequant", "post_quant", "recon", "image_embed",
           "text_embed", "code_margin"]


def default_dir():
    env = os.environ.get("UNITOK_GOLDENS")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "..", "..", "..", "..", "shared", "goldens", "tiny64"),
                 os.path.join(here, "..", "..", "..", "shared", "goldens", "tiny64")):
        if os.path.isdir(cand):
            return os.path.normpath(cand)
    raise SystemExit("golden folder not found: pass it as an argument or set UNITOK_GOLDENS")


def load_safetensors(path):
    """Minimal safetensors reader (F32/I64 only), to avoid a hard dependency."""
    import struct
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    dt = {"F32": "<f4", "I64": "<i8", "F64": "<f8"}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=dt[v["dtype"]]).reshape(v["shape"]).copy()
    return out, header.get("__metadata__", {})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("golden_dir", nargs="?", default=None)
    ap.add_argument("--json", default=None, help="write the measured errors here")
    args = ap.parse_args()
    gdir = args.golden_dir or default_dir()

    cfg = json.load(open(os.path.join(gdir, "config.json")))
    weights, meta = load_safetensors(os.path.join(gdir, "model.safetensors"))
    assert json.loads(meta["unitok_config"]) == cfg

    # the torch-free .pth reader must give the same weights and args
    ck = torchzip.load_checkpoint(os.path.join(gdir, "model.pth"))
    sd = ck["trainer"]["unitok"]
    assert list(sd.keys()) and set(sd) == set(weights)
    for k in sd:
        assert sd[k].shape == weights[k].shape and np.array_equal(sd[k], weights[k]), k
    for k, v in cfg.items():
        assert ck["args"][k] == v, (k, ck["args"][k], v)
    print(f"model.pth == model.safetensors ({len(sd)} tensors), args carry config.json")

    x = np.load(os.path.join(gdir, "input.npy"))
    ids = np.load(os.path.join(gdir, "text_ids.npy"))
    gold = {k: np.load(os.path.join(gdir, k + ".npy")) for k in OUTPUTS + ["codes"]}
    ginter, _ = load_safetensors(os.path.join(gdir, "intermediates.safetensors"))

    model = unitok_ref.UniTokRef(weights, cfg, np.float64)
    rec = {}
    out = model.forward(x, ids, codes_override=gold["codes"], rec=rec)

    results = {"outputs": {}, "intermediates": {}}
    ok = True

    def cmp(group, key, ours, ref):
        nonlocal ok
        ours = np.asarray(ours, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        assert ours.shape == ref.shape, (key, ours.shape, ref.shape)
        err = float(np.abs(ours - ref).max())
        results[group][key] = {"max_abs_err": err, "ref_abs_max": float(np.abs(ref).max())}
        flag = "ok" if err <= ATOL else "FAIL"
        ok &= err <= ATOL
        print(f"  {key:28s} {str(ref.shape):18s} max|ref| {np.abs(ref).max():9.4g}"
              f"  max err {err:9.3e}  {flag}")

    print("outputs (float64 reference vs golden float32):")
    for k in OUTPUTS:
        cmp("outputs", k, out[k], gold[k])
    print("intermediates:")
    for k in ginter:
        cmp("intermediates", k, rec[k], ginter[k])
    missing = sorted(set(ginter) - set(rec))
    assert not missing, missing

    codes_equal = bool(np.array_equal(out["codes"], gold["codes"]))
    f64_equal = bool(np.array_equal(out["codes_working_dtype"], gold["codes"]))
    results["codes"] = {
        "identical_fp32_argmax": codes_equal,
        "identical_fp64_argmax": f64_equal,
        "count": int(gold["codes"].size),
        "min_margin": float(out["code_margin"].min()),
        "min_margin_golden": float(gold["code_margin"].min()),
    }
    ok &= codes_equal
    print(f"codes: {gold['codes'].size} identical (fp32 argmax) = {codes_equal}, "
          f"identical (fp64 argmax) = {f64_equal}; min margin {out['code_margin'].min():.3e}")

    # the reference decoder fed its own codes must give the golden recon too
    out_own = model.forward(x, ids, codes_override=None)
    err = float(np.abs(out_own["recon"] - gold["recon"]).max())
    results["recon_from_own_codes_max_abs_err"] = err
    print(f"recon from the reference's own codes: max err {err:.3e}")
    ok &= err <= ATOL

    results["atol"] = ATOL
    results["passed"] = bool(ok)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
