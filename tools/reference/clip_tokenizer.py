"""The OpenAI CLIP byte-level BPE tokenizer (as used by open_clip), in plain Python.

Needs the merges file ``bpe_simple_vocab_16e6.txt`` (plain text or .gz).  The Rust crate
``instant-clip-tokenizer`` 0.1.0 ships the identical file; ``find_vocab()`` looks for it in the
local cargo registry, or takes $CLIP_BPE_VOCAB.  Text clean-up follows the reference: ftfy
``fix_text`` (when ftfy is installed), HTML-unescape twice, whitespace collapse, lower-case.
Output: [49406] + BPE ids + [49407], zero-padded to the context length; longer inputs keep the
first context-1 ids and end with 49407.
"""
import glob
import gzip
import hashlib
import html
import os

import regex as re

VOCAB_MD5 = "f83f3e2479df59e7cd1597baa03f34c8"  # of the uncompressed text
SOT, EOT = 49406, 49407


def find_vocab():
    env = os.environ.get("CLIP_BPE_VOCAB")
    if env:
        return env
    home = os.path.expanduser("~")
    cands = sorted(glob.glob(os.path.join(
        os.environ.get("CARGO_HOME", os.path.join(home, ".cargo")),
        "registry", "src", "*", "instant-clip-tokenizer-*", "bpe_simple_vocab_16e6.txt*")))
    if not cands:
        raise SystemExit("bpe_simple_vocab_16e6.txt not found: set CLIP_BPE_VOCAB "
                         "(it ships in the crate instant-clip-tokenizer)")
    return cands[-1]


def bytes_to_unicode():
    """Reversible map from bytes to printable unicode characters (GPT-2 / CLIP)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _pairs(word):
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


class ClipTokenizer:
    def __init__(self, vocab_path=None, check_md5=True):
        path = vocab_path or find_vocab()
        raw = open(path, "rb").read()
        if path.endswith(".gz"):
            raw = gzip.decompress(raw)
        if check_md5:
            assert hashlib.md5(raw).hexdigest() == VOCAB_MD5, "unexpected BPE vocabulary file"
        lines = raw.decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
        self.byte_encoder = bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        assert len(self.encoder) == 49408
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self.pat = re.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
            r"""[^\s\p{L}\p{N}]+""", re.IGNORECASE)

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = _pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new.extend(word[i:])
                    break
                new.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        out = " ".join(word)
        self.cache[token] = out
        return out

    @staticmethod
    def clean(text):
        try:
            import ftfy
            text = ftfy.fix_text(text)
        except ImportError:
            pass
        text = html.unescape(html.unescape(text)).strip()
        return re.sub(r"\s+", " ", text).strip().lower()

    def encode(self, text):
        ids = []
        for tok in re.findall(self.pat, self.clean(text)):
            tok = "".join(self.byte_encoder[b] for b in tok.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(tok).split(" "))
        return ids

    def tokenize(self, texts, context_length=77):
        import numpy as np
        out = np.zeros((len(texts), context_length), dtype=np.int64)
        for i, t in enumerate(texts):
            ids = [SOT] + self.encode(t) + [EOT]
            if len(ids) > context_length:
                ids = ids[:context_length]
                ids[-1] = EOT
            out[i, :len(ids)] = ids
        return out
