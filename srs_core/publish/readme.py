"""The README's results block, glued from an executed figures notebook.

The README states no result in its own words: the block between
``<!-- claims:start -->`` and ``<!-- claims:end -->`` is written by this
module from the claim sentences that ``notebooks/05-figures.ipynb``,
``notebooks/07-beyond.ipynb``, ``notebooks/models-table1.ipynb`` and
``notebooks/08-real-diginetica.ipynb`` glue (:mod:`srs_core.claims`,
:mod:`srs_core.table1` and :mod:`srs_core.real_split` compute them from the
runs), with the build they came from. After building a book, a maintainer runs::

    N=_build/default/src/notebooks
    .venv/bin/python -m srs_core.publish.readme $N/05-figures.ipynb $N/07-beyond.ipynb \\
        $N/models-table1.ipynb $N/08-real-diginetica.ipynb \\
        --built "profile default, commit abc1234, 2026-12-03, AMD EPYC 2 cores"
"""
from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path

START, END = "<!-- claims:start -->", "<!-- claims:end -->"
#: The claims in the order the README lists them, with their headings.
ORDER = (
    ("I", "I. Cross-entropy's cost against the catalogue"),
    ("II-speed", "II. Speed of the scalable losses"),
    ("II-acc-diss-synthetic", "II. Accuracy, dissertation's setting, synthetic data"),
    ("II-acc-synthetic", "II. Accuracy, settings chosen on validation, synthetic data"),
    ("III-synthetic", "III. L2 alone, synthetic data"),
    ("II-acc-diss-real", "II. Accuracy, dissertation's setting, real data"),
    ("II-acc-real", "II. Accuracy, settings chosen on validation, real data"),
    ("III-real", "III. L2 alone, real data"),
    ("vsknn", "The neural models against V-SKNN, real data"),
    ("gbce", "gBCE at its authors' setting and with our offset, real data"),
    ("frontier", "Beyond the dissertation, the loss to pick, real data"),
    ("table1-gap", "Real Diginetica, Table 1: the recommended loss against the published numbers"),
    ("table1-gap-test", "Real Diginetica, Table 1 at the best test epoch (the published protocol)"),
    ("table1-gap-ce", "Real Diginetica, Table 1: cross-entropy against the published numbers"),
    ("real-I", "Real Diginetica, I. Cross-entropy's cost per sample against yoochoose-100k's"),
    ("table1-speed", "Real Diginetica, II. Speed"),
    ("real-II-rec", "Real Diginetica, II. Accuracy of the recommended loss"),
    ("real-II-diss", "Real Diginetica, II. Accuracy, dissertation's setting"),
    ("real-III", "Real Diginetica, III. L2 alone"),
    ("table1-vsknn", "Real Diginetica, the neural models against V-SKNN"),
)
PREFIX = "application/papermill.record/text/plain"


def glued(notebook: str | Path) -> dict[str, str]:
    """Every text value glued in an executed notebook, by name."""
    nb = json.loads(Path(notebook).read_text())
    out = {}
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            text = o.get("data", {}).get(PREFIX)
            if name and text is not None:
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    continue
                if isinstance(value, str):
                    out[name] = value
    return out


def render(values: dict[str, str], built: str, kept: tuple[dict[str, str], str] | None = None) -> str:
    """The README block: one line per claim, its verdict and its sentence.
    ``kept`` (:func:`kept_lines`) supplies, word for word, the lines of the
    claims these notebooks do not glue, and the header then names both builds."""
    missing = [k for k, _ in ORDER if f"claim-{k}-sentence" not in values and not (kept and k in kept[0])]
    if missing:
        raise ValueError(f"the notebooks glue no sentence for claim(s) {', '.join(missing)}: pass the executed "
                         "notebooks 05-figures, 07-beyond, models-table1 and 08-real-diginetica (from "
                         "_build/<profile>/src/notebooks/)")
    old = [k for k, _ in ORDER if f"claim-{k}-sentence" not in values]
    if old and len(old) == len(ORDER):  # nothing new: the block as it was, under its own build
        built = kept[1]
    if old and len(old) < len(ORDER):
        new = [k for k, _ in ORDER if k not in old]
        keys = [k for k, _ in ORDER]
        which = (f"the last {len(new)} claims" if keys[-len(new):] == new else
                 f"the first {len(new)} claims" if keys[:len(new)] == new else
                 "the claims headed " + ", ".join(repr(h) for k, h in ORDER if k in new))
        header = (f"*Computed by `srs_core.claims` from the runs of two book builds: {which} from {built}; the "
                  f"other {len(old)}, kept word for word from the block before, from the runs of {kept[1]}. "
                  "Regenerate with `python -m srs_core.publish.readme`.*")
    else:
        header = (f"*Computed by `srs_core.claims` from the runs of one book build ({built}); "
                  "regenerate with `python -m srs_core.publish.readme`.*")
    lines = [START, header, ""]
    for key, heading in ORDER:
        if key in old:
            lines.append(kept[0][key])
        else:
            lines.append(f"- **{heading}: {values[f'claim-{key}-verdict']}.** {values[f'claim-{key}-sentence']}")
    lines.append(END)
    return "\n".join(lines)


def kept_lines(readme: str | Path) -> tuple[dict[str, str], str | None]:
    """The claim lines of the README's current block, by claim key, and the
    build its header names (for :func:`render`'s ``kept``); ``None`` when the
    header names two builds, as the kept lines' own build is then unknown."""
    text = Path(readme).read_text()
    block = text.split(START, 1)[1].split(END, 1)[0]
    header = re.search(r"from the runs of (?:one book build|[^(]*)\((.*?)\)(?:;|\.)", block)
    lines = {}
    for key, heading in ORDER:
        found = re.search(rf"^- \*\*{re.escape(heading)}: .*$", block, flags=re.M)
        if found:
            lines[key] = found.group(0)
    if "two book builds" in block.split("\n\n", 1)[0]:
        return lines, None  # its lines come from two builds: the caller names the kept ones' (--kept-built)
    return lines, header.group(1) if header else "an earlier build"


def update(readme: str | Path, block: str) -> None:
    path = Path(readme)
    text = path.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{path} has no {START} ... {END} block to replace")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(head + block + tail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="rewrite the README's results block from the executed 05-figures, "
                                 "07-beyond, models-table1 and 08-real-diginetica notebooks")
    ap.add_argument("notebooks", type=Path, nargs="+")
    ap.add_argument("--built", required=True, help="which build: profile, commit, date, machine")
    ap.add_argument("--readme", type=Path, default=Path(__file__).resolve().parents[2] / "README.md")
    ap.add_argument("--keep-missing", action="store_true",
                    help="keep, word for word, the current block's lines of the claims these notebooks do not "
                    "glue (a build that ran only some notebooks); the header then names both builds")
    ap.add_argument("--kept-built", help="with --keep-missing: the build the kept lines come from (default: the one "
                    "the current block's header names, when it names one build)")
    args = ap.parse_args(argv)
    values = {}
    for nb in args.notebooks:
        values.update(glued(nb))
    kept = None
    if args.keep_missing:
        lines, built = kept_lines(args.readme)
        if not (args.kept_built or built):
            ap.error("the current block names two builds: say which the kept lines come from with --kept-built")
        kept = (lines, args.kept_built or built)
    update(args.readme, render(values, args.built, kept))
    print(f"rewrote the claims block of {args.readme}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
