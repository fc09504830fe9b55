#!/usr/bin/python3
"""Train the small byte-level BPE tokenizer of the demo MoE model and write it in HF form.

Run with Debian's python (no third-party packages needed):

    /usr/bin/python3 scripts/train_bpe_tokenizer.py \
        --data <data dir> --out examples/models/mixtral-tiny-shakespeare --vocab-size 4096

The tokenizer is GPT-2-style: the GPT-2 split regex, bytes mapped to printable unicode
characters, merges learned by plain BPE (most frequent adjacent pair first), and one special
token `<|endoftext|>` with the last id. It writes `tokenizer.json`, `tokenizer_config.json` and
`special_tokens_map.json`.

This module is also imported by `train_demo_moe.py`, which uses `BpeEncoder` and the
train/held-out split defined here, so the model and the tokenizer never disagree on either.
`scripts/check_demo_tokenizer.mjs` checks that `@huggingface/tokenizers` encodes held-out text
to exactly the ids `BpeEncoder` produces.
"""
from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import sys
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

END_OF_TEXT = "<|endoftext|>"

# Training corpora, relative to the data folder (--data). WikiText-2 *test* and PTB *test* are the
# evaluation sets of the model card and must never be trained on; wiki.valid.raw is allowed
# (the data folder holds no WikiText-2 train split).
TRAIN_FILES = ("tinyshakespeare/input.txt", "wikitext-2-raw/wiki.valid.raw")
FORBIDDEN_TRAIN_FILES = ("wikitext-2-raw/wiki.test.raw", "ptb/ptb.test.txt")

# The last HELD_OUT_FRACTION of each training file (cut at a line boundary) is held out: it is
# never used to learn merges nor to train the model, and gives the model's validation loss.
HELD_OUT_FRACTION = 0.05


# --------------------------------------------------------------------------------------------
# Data split
# --------------------------------------------------------------------------------------------

def split_train_held_out(text: str, fraction: float = HELD_OUT_FRACTION) -> Tuple[str, str]:
    """Split `text` into (train, held_out): held_out is the tail from the first line start at or
    after len(text) * (1 - fraction)."""
    cut = int(len(text) * (1.0 - fraction))
    newline = text.find("\n", cut)
    cut = len(text) if newline < 0 else newline + 1
    return text[:cut], text[cut:]


def read_training_texts(data_dir: Path) -> List[Tuple[str, str, str]]:
    """Return [(relative path, train part, held-out part)] for every training file."""
    out = []
    for rel in TRAIN_FILES:
        assert rel not in FORBIDDEN_TRAIN_FILES
        path = data_dir / rel
        if not path.is_file():
            sys.exit(f"error: training file {path} is missing; pass --data pointing at the data folder")
        train, held_out = split_train_held_out(path.read_text(encoding="utf-8"))
        out.append((rel, train, held_out))
    return out


# --------------------------------------------------------------------------------------------
# GPT-2 pre-tokenizer, with the character classes spelled out so Python's `re` matches what
# JavaScript's /u regex (used by @huggingface/tokenizers) and Oniguruma (Rust tokenizers) do.
# --------------------------------------------------------------------------------------------

# JavaScript's \s (ECMAScript WhiteSpace + LineTerminator). Python's own \s differs: it also
# matches U+001C..U+001F and does not match U+FEFF.
_JS_WHITESPACE = "\t\n\x0b\x0c\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


def _unicode_class(prefix: str) -> str:
    """A regex class body listing every code point whose general category starts with `prefix`
    (e.g. "L" for \\p{L}, "N" for \\p{N}), as compact ranges."""
    ranges: List[Tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)).startswith(prefix):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))

    def esc(cp: int) -> str:
        return "\\U%08x" % cp

    return "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges)


_LETTER = _unicode_class("L")
_NUMBER = _unicode_class("N")

# 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
GPT2_SPLIT = re.compile(
    "'s|'t|'re|'ve|'m|'ll|'d"
    f"| ?[{_LETTER}]+"
    f"| ?[{_NUMBER}]+"
    f"| ?[^{_JS_WHITESPACE}{_LETTER}{_NUMBER}]+"
    f"|[{_JS_WHITESPACE}]+(?![^{_JS_WHITESPACE}])"
    f"|[{_JS_WHITESPACE}]+"
)


def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def pre_tokenize(text: str) -> List[str]:
    """Split with the GPT-2 regex and map each piece's UTF-8 bytes to byte-level characters."""
    return ["".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8")) for piece in GPT2_SPLIT.findall(text)]


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

def learn_merges(word_counts: Dict[str, int], num_merges: int, min_frequency: int = 2) -> List[Tuple[str, str]]:
    """Plain BPE: repeatedly merge the most frequent adjacent pair (ties: lexicographically
    smallest pair) in the counted pre-tokenized words. Incremental: only the words that hold the
    merged pair are revisited, and a lazy max-heap holds the pair counts."""
    words: List[List[str]] = [list(w) for w in word_counts]
    counts: List[int] = list(word_counts.values())
    pair_count: Dict[Tuple[str, str], int] = Counter()
    pair_words: Dict[Tuple[str, str], set] = {}
    for wi, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:]):
            pair_count[pair] += counts[wi]
            pair_words.setdefault(pair, set()).add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)

    merges: List[Tuple[str, str]] = []
    while len(merges) < num_merges and heap:
        neg, pair = heapq.heappop(heap)
        current = pair_count.get(pair, 0)
        if current != -neg:  # stale entry; the fresh count was pushed when it changed
            continue
        if current < min_frequency:
            break
        merges.append(pair)
        merged = pair[0] + pair[1]
        changed: Dict[Tuple[str, str], int] = Counter()
        for wi in pair_words.pop(pair, ()):
            symbols, c = words[wi], counts[wi]
            for p in zip(symbols, symbols[1:]):
                changed[p] -= c
            out: List[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            words[wi] = out
            for p in zip(out, out[1:]):
                changed[p] += c
                pair_words.setdefault(p, set()).add(wi)
        pair_count.pop(pair, None)
        for p, delta in changed.items():
            if p == pair or delta == 0:
                continue
            pair_count[p] = pair_count.get(p, 0) + delta
            if pair_count[p] > 0:
                heapq.heappush(heap, (-pair_count[p], p))
            else:
                pair_count.pop(p, None)
    return merges


# --------------------------------------------------------------------------------------------
# Encoding (the reference the JS check compares against)
# --------------------------------------------------------------------------------------------

class BpeEncoder:
    """GPT-2-style rank-ordered BPE encoder over a vocab + merges (as in tokenizer.json)."""

    def __init__(self, vocab: Dict[str, int], merges: Sequence[Tuple[str, str]], special_tokens: Dict[str, int]):
        self.vocab = vocab
        self.ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.special_tokens = special_tokens
        self.id_to_token = {i: t for t, i in vocab.items()}
        self.id_to_token.update({i: t for t, i in special_tokens.items()})
        self._cache: Dict[str, List[int]] = {}
        self._special_split = re.compile("(" + "|".join(re.escape(t) for t in special_tokens) + ")") if special_tokens else None

    @classmethod
    def from_tokenizer_json(cls, path: Path) -> "BpeEncoder":
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        model = doc["model"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        specials = {t["content"]: t["id"] for t in doc.get("added_tokens", [])}
        return cls(model["vocab"], merges, specials)

    def _bpe(self, piece: str) -> List[int]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        word = list(piece)
        while len(word) > 1:
            best: Optional[Tuple[int, int]] = None  # (rank, position)
            for i in range(len(word) - 1):
                r = self.ranks.get((word[i], word[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            a, b = word[best[1]], word[best[1] + 1]
            out: List[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        ids = [self.vocab[t] for t in word]
        self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> List[int]:
        parts = self._special_split.split(text) if self._special_split else [text]
        ids: List[int] = []
        for part in parts:
            if part in self.special_tokens:
                ids.append(self.special_tokens[part])
                continue
            for piece in pre_tokenize(part):
                ids.extend(self._bpe(piece))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        out = bytearray()
        for i in ids:
            token = self.id_to_token[i]
            if token in self.special_tokens:
                out.extend(token.encode("utf-8"))
            else:
                out.extend(CHAR_TO_BYTE[c] for c in token)
        return out.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# HF files
# --------------------------------------------------------------------------------------------

def tokenizer_json(vocab: Dict[str, int], merges: Sequence[Tuple[str, str]], eot_id: int) -> dict:
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": eot_id, "content": END_OF_TEXT, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": False, "special": True},
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            # "a b" strings (the GPT-2 form): byte-level symbols never contain a space.
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def tokenizer_config(eot_id: int, model_max_length: int) -> dict:
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(eot_id): {"content": END_OF_TEXT, "lstrip": False, "normalized": False, "rstrip": False,
                          "single_word": False, "special": True},
        },
        "bos_token": END_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "unk_token": END_OF_TEXT,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "tokenizer_class": "GPT2Tokenizer",
    }


def special_tokens_map() -> dict:
    return {"bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT, "unk_token": END_OF_TEXT}


def write_json_atomic(path: Path, obj: dict, indent: Optional[int] = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; these are shipped
    os.replace(tmp, path)


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder holding tinyshakespeare/input.txt and wikitext-2-raw/wiki.valid.raw")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "examples" / "models" / "mixtral-tiny-shakespeare")
    ap.add_argument("--vocab-size", type=int, default=4096, help="total ids, including the 256 bytes and <|endoftext|>")
    ap.add_argument("--model-max-length", type=int, default=1024)
    args = ap.parse_args(argv)
    if args.vocab_size < 258:
        sys.exit("error: --vocab-size must be at least 258 (256 bytes, one merge, <|endoftext|>)")

    word_counts: Counter = Counter()
    for rel, train, _ in read_training_texts(args.data):
        word_counts.update(pre_tokenize(train))
        print(f"{rel}: {len(train)} training characters", flush=True)
    print(f"{len(word_counts)} distinct pre-tokens", flush=True)

    num_merges = args.vocab_size - 256 - 1
    merges = learn_merges(dict(word_counts), num_merges)
    if len(merges) < num_merges:
        print(f"warning: only {len(merges)} pairs occur at least twice; vocab is smaller than asked", flush=True)

    vocab: Dict[str, int] = {}
    for b in range(256):
        vocab[BYTE_TO_CHAR[b]] = b
    for a, b in merges:
        # Two different merges can spell the same string ("a"+"bc", "ab"+"c"): one id for it.
        vocab.setdefault(a + b, len(vocab))
    eot_id = len(vocab)

    write_json_atomic(args.out / "tokenizer.json", tokenizer_json(vocab, merges, eot_id), indent=None)
    write_json_atomic(args.out / "tokenizer_config.json", tokenizer_config(eot_id, args.model_max_length))
    write_json_atomic(args.out / "special_tokens_map.json", special_tokens_map())
    print(f"wrote {args.out}/tokenizer.json: {eot_id + 1} ids ({len(merges)} merges), <|endoftext|> = {eot_id}", flush=True)

    encoder = BpeEncoder(vocab, merges, {END_OF_TEXT: eot_id})
    for rel, train, held_out in read_training_texts(args.data):
        n = len(encoder.encode(held_out))
        assert encoder.decode(encoder.encode(held_out[:5000])) == held_out[:5000], "BPE round trip failed"
        print(f"{rel} held-out: {len(held_out)} chars -> {n} tokens ({len(held_out) / n:.2f} chars/token)", flush=True)


if __name__ == "__main__":
    main()
