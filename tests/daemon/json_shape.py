#!/usr/bin/env python3
"""json_shape.py DOC [--commands FILE --skip A,B] --dir DIR | NAME FILE...

Checks mnemoctl's --json output against the shapes docs/json.md gives: each "### NAME"
heading there ("lang list", "error") is followed by a ```json block, a sketch of the output
in which a string is a type ("string", "integer", "number", "boolean", "time", "object",
"array", "any", alternatives joined by "|": "integer|null"), an object lists every key (no
more, no fewer), and an array of one element gives the type of every item.  "time" is ISO
8601 UTC, "2026-12-04T18:54:13Z".  DIR holds NAME.json files ("lang_list.json"); --commands
lists the names that must all have a shape and a file (less --skip).  "key?": the value is
null or of the shape given; {"*": S}: any keys, each value of shape S; "@NAME": the shape of
heading NAME.
"""
import json
import re
import sys

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def shapes(doc):
    out, name = {}, None
    lines = open(doc, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^### (.+)$", lines[i])
        if m:
            name = re.sub(r"[^a-z0-9]+", "_", m.group(1).strip("` ").lower()).strip("_")
        elif lines[i].strip() == "```json" and name:
            j = lines.index("```", i + 1)
            out[name] = json.loads("\n".join(lines[i + 1:j]))
            name, i = None, j
        i += 1
    return out


def check(v, s, path, bad, doc):
    if isinstance(s, str) and s.startswith("@"):  # the shape of another heading
        return check(v, doc[s[1:]], path, bad, doc)
    if isinstance(s, dict) and list(s) == ["*"]:  # any keys, each value of one shape
        if not isinstance(v, dict):
            return bad.append("%s: want an object, got %r" % (path, v))
        for k in v:
            check(v[k], s["*"], path + "." + k, bad, doc)
    elif isinstance(s, dict):
        if not isinstance(v, dict):
            return bad.append("%s: want an object, got %r" % (path, v))
        keys = {k.rstrip("?"): k for k in s}
        for k, sk in keys.items():
            if k not in v:
                bad.append("%s: no key %r" % (path, k))
            elif not (sk.endswith("?") and v[k] is None):  # "key?": null or the shape
                check(v[k], s[sk], path + "." + k, bad, doc)
        for k in v:
            if k not in keys:
                bad.append("%s: key %r is not documented" % (path, k))
    elif isinstance(s, list):
        if not isinstance(v, list):
            return bad.append("%s: want an array, got %r" % (path, v))
        for n, x in enumerate(v):
            check(x, s[0], "%s[%d]" % (path, n), bad, doc)
    else:
        ok = any(fits(v, t) for t in s.split("|"))
        if not ok:
            bad.append("%s: want %s, got %r" % (path, s, v))


def fits(v, t):
    return {
        "string": lambda: isinstance(v, str),
        "integer": lambda: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda: isinstance(v, bool),
        "null": lambda: v is None,
        "time": lambda: isinstance(v, str) and TIME.match(v) is not None,
        "object": lambda: isinstance(v, dict),
        "array": lambda: isinstance(v, list),
        "any": lambda: True,
    }[t]()


def digits(t):
    m = t.lower().split("e")[0].replace("-", "").replace(".", "").lstrip("0")
    return len(m.rstrip("0")) if "." in t.split("e")[0] else len(m)


def main():
    args = sys.argv[1:]
    doc = shapes(args.pop(0))
    pairs, need, skip, d = [], [], set(), None
    while args:
        a = args.pop(0)
        if a == "--commands":
            need = open(args.pop(0)).read().split()
        elif a == "--skip":
            skip = set(args.pop(0).split(","))
        elif a == "--dir":
            d = args.pop(0)
        else:
            pairs.append((a, args.pop(0)))
    bad = []
    for n in need:
        if n in skip:
            continue
        if n not in doc:
            bad.append("docs/json.md has no shape for %r" % n)
    if d:
        import os
        for f in sorted(os.listdir(d)):
            pairs.append((f[:-5], os.path.join(d, f)))
        ran = {p[0] for p in pairs}
        for n in need:
            if n not in skip and n not in ran:
                bad.append("%r was not run" % n)
    for name, f in pairs:
        if name not in doc:
            bad.append("%s: no shape %r in docs/json.md" % (f, name))
            continue
        text = open(f, encoding="utf-8").read()
        floats = []
        try:
            v = json.loads(text, parse_float=lambda t: floats.append(t) or float(t))
        except ValueError as e:
            bad.append("%s: not JSON (%s): %s" % (name, e, text[:200]))
            continue
        check(v, doc[name], name, bad, doc)
        for t in floats:  # the fewest digits that read back the same (Python's repr)
            if digits(t) > digits(repr(float(t))):
                bad.append("%s: %s is not in its shortest form (%r)" % (name, t, float(t)))
    for b in bad:
        print(b)
    sys.exit(1 if bad else 0)


main()
