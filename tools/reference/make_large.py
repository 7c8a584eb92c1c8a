"""Write a full-size (vitamin_large, the released architecture) UniTok training checkpoint with
seeded random weights in the official torch.save container, without torch.

Used to check `unitok convert` and loading at the real scale (3.3 GB of fp32 weights; the
released weights cannot be fetched offline):

    python3 tools/reference/make_large.py large.pth
    unitok convert large.pth -o large.safetensors
"""
import collections
import sys

import alt_model
import torchzip

LARGE_CONFIG = collections.OrderedDict(alt_model.ALT_CONFIG)
LARGE_CONFIG.update([
    ("model", "vitamin_large"), ("img_size", 256), ("vocab_size", 32768), ("vocab_width", 64),
    ("num_codebooks", 8), ("embed_dim", 768), ("drop_path", 0.1), ("text_width", 768),
    ("text_heads", 12), ("text_layers", 12), ("seed", 0), ("stem_width", 160),
    ("conv_stage_dims", [160, 320]), ("conv_stage_depths", [2, 4]), ("vit_width", 1024),
    ("vit_depth", 31), ("vit_heads", 16), ("attn_proj_heads", 16),
    ("decoder_dims", [1024, 320, 160]), ("decoder_up_depths", [4, 2]),
])


def main():
    out = sys.argv[1]
    cfg = dict(LARGE_CONFIG)
    sd, _, _ = alt_model.build_weights(cfg)
    args = alt_model.checkpoint_args(cfg)
    # An official checkpoint's args carry only the reference's own fields; drop the extra
    # architecture keys so the reader must take them from the `vitamin_large` preset.
    for k in ("stem_width", "conv_stage_dims", "conv_stage_depths", "conv_expand_ratio", "vit_width",
              "vit_depth", "vit_heads", "vit_mlp_ratio", "attn_proj_heads", "attn_proj_mlp_ratio",
              "decoder_dims", "decoder_up_depths", "text_mlp_ratio"):
        args.pop(k, None)
    args["dtype"] = torchzip.torch_dtype("float32")

    def build(tensor):
        unitok = collections.OrderedDict((k, tensor(v)) for k, v in sd.items())
        return {"args": args, "epoch": 0, "iter": 0, "trainer": {"unitok": unitok}}

    torchzip.save_checkpoint(out, build, folder="large")
    print(f"wrote {out}: {sum(v.size for v in sd.values())} values")


if __name__ == "__main__":
    main()
