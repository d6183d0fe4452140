"""Draw the stratified mutant sample of issue 26 (mutation score over the whole library).

mutmut 3.8.1 (bench/requirements-mutation.txt) with setup.cfg's [mutmut] writes every mutant of the
configured modules into mutants/ (one `<file>.py.meta` per source file). This script groups them by
library module, drops mutants that are not interesting (see `boring`), shuffles each group with a
seeded RNG and keeps the first PER_GROUP of each, then prints the names, one a line:

    .venv/bin/python bench/mutation_sample.py --generate > /tmp/mutation_sample.txt
    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/mutmut run --max-children 1 $(cat /tmp/mutation_sample.txt)
    .venv/bin/python bench/mutation_sample.py --report /tmp/mutation_sample.txt   # per-group table

`--generate` makes mutmut write mutants/ first (only the generation step of `mutmut run`: no tests).
The sample depends on the source it is drawn from: RESULTS.md names the commit.
"""
from __future__ import annotations

import argparse
import contextlib
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

SEED = 26
PER_GROUP = 25

# (group, path prefixes). vitviz/inspect/*.py files that only re-export explain/ or compare/ (six
# lines, `sys.modules[__name__] = import_module(...)`) hold no functions, so no mutants: they are
# not counted as modules of their own.
GROUPS = [
    ("layers", ("vitviz/layers/",)),
    ("models", ("vitviz/models/",)),
    ("inspect", ("vitviz/inspect/",)),
    ("explain", ("vitviz/explain/",)),
    ("compare", ("vitviz/compare/",)),
    ("metrics", ("vitviz/metrics.py",)),
    ("train", ("vitviz/train/",)),
    ("data", ("vitviz/data/",)),
    ("checkpoints", ("vitviz/checkpoints.py", "vitviz/checkpoint_meta.py")),
    ("hub", ("vitviz/hub.py",)),
    ("result_cache", ("vitviz/result_cache.py", "vitviz/resolve.py")),
    ("studies", ("vitviz/studies/",)),
]

# functions that only present things to a person
_PRESENTATION = re.compile(r"\.(__repr__|__str__|extra_repr|_?describe\w*|_?format\w*|_?print\w*)__mutmut_")
# a changed line that only builds a message for a person
_MESSAGE_LINE = re.compile(
    r"\b(raise\s|warnings\.warn|log\w*\.|logger\.|print\(|help=|description=|msg\s*=|message\s*=)"
)
_QUOTES = ("f\"", "\"", "'", "f'", "rf\"", "r\"")
_STRING = re.compile(r"""("([^"\\]|\\.)*"|'([^'\\]|\\.)*')""")


def group_of(path: str) -> str | None:
    for name, prefixes in GROUPS:
        if any(path.startswith(p) for p in prefixes):
            return name
    return None


def changed_lines(diff: str) -> tuple[list[str], list[str]]:
    minus = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    plus = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return minus, plus


def _string_tokens(line: str) -> list[str]:
    return [m.group(0) for m in _STRING.finditer(line)]


def _mutated_text(a: str, b: str) -> str | None:
    """The text of literal `a` that mutmut changed into `b` ("XX" wrapped around it, or its case)."""
    if a.lower() == b.lower():
        return a.strip("\"'").lstrip("f\"'")
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    if b[i:i + 2] != "XX" or "XX" not in b[i + 2:]:
        return None
    return b[i + 2:b.index("XX", i + 2)]


def boring(name: str, diff: str) -> str | None:
    """Why a mutant is left out of the sample, or None.

    Left out: mutants of functions that only present things (`__repr__`, `describe*`, `format*`),
    a changed message of an exception, warning or log line (the literal, or the message replaced by
    None), and a changed prose literal (one with a space: a label or sentence shown to a person,
    "XXtest accuracyXX"). Kept: every other string change (keys, modes, globs, separators without a
    space, "XXqXX", "PCA").
    """
    if _PRESENTATION.search(name):
        return "presentation function"
    minus, plus = changed_lines(diff)
    if not minus and not plus:
        return "no change"
    stripped = [a.strip() for a in minus]
    literal_lines = all(a.startswith(_QUOTES) for a in stripped)
    if literal_lines and all(re.fullmatch(r"\s*None\)*,?", b) for b in plus):
        return "message string"  # a message of several literal lines replaced by None
    if any(a.startswith("raise ") for a in stripped) or (
            any(_MESSAGE_LINE.search(a) for a in minus)
            and all(_MESSAGE_LINE.search(a) or a.startswith(_QUOTES) for a in stripped)):
        if all(re.fullmatch(r"\s*(raise \w+(\.\w+)*\()?None\)*", b) or
               _STRING.sub('""', b) in {_STRING.sub('""', a) for a in minus} for b in plus):
            return "message string"
    if len(minus) == len(plus) and all(_STRING.sub('""', a) == _STRING.sub('""', b) for a, b in zip(minus, plus)):
        texts = []
        for a, b in zip(minus, plus):
            for sa, sb in zip(_string_tokens(a), _string_tokens(b)):
                if sa != sb:
                    texts.append(_mutated_text(sa, sb))
        if texts and all(t is not None and re.search(r"\s", t) for t in texts):
            return "prose string"
    return None


def generate() -> None:
    """The mutant-generation step of `mutmut run` (mutmut 3.8.1), without any test run."""
    from mutmut.__main__ import copy_also_copy_files, copy_src_dir, create_mutants, setup_source_paths
    from mutmut.mutation.trampoline import set_mutant_under_test

    set_mutant_under_test("mutant_generation")
    Path("mutants").mkdir(exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):  # mutmut prints each file's path
        copy_src_dir()
        copy_also_copy_files()
        setup_source_paths()
        create_mutants(1)


def all_mutants() -> dict[str, list[tuple[str, str]]]:
    """group -> [(mutant name, source path)], in a fixed order."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.utils.file_utils import walk_mutatable_files

    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path in sorted(walk_mutatable_files(), key=str):
        group = group_of(str(path))
        if group is None:
            continue
        data = SourceFileMutationData(path=path)
        data.load()
        out[group].extend((key, str(path)) for key in sorted(data.exit_code_by_key))
    return out


def draw(per_group: int = PER_GROUP, seed: int = SEED, verbose: bool = False) -> list[str]:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    sample: list[str] = []
    for group, _ in GROUPS:
        mutants = all_mutants().get(group, [])
        order = list(mutants)
        random.Random(f"{seed}:{group}").shuffle(order)
        kept, skipped = [], defaultdict(int)
        for name, path in order:
            if len(kept) == per_group:
                break
            why = boring(name, get_diff_for_mutant(name, path=path))
            if why:
                skipped[why] += 1
                continue
            kept.append(name)
        if verbose:
            print(f"{group}: {len(mutants)} mutants, sampled {len(kept)}, skipped {dict(skipped)}", file=sys.stderr)
        sample.extend(kept)
    return sample


def module_group(name: str) -> str | None:
    """The group of a mutant name such as `vitviz.layers.attention.x_iterative_pinv__mutmut_4`."""
    module = name.split("__mutmut_")[0].rsplit(".", 1)[0]
    return group_of(module.replace(".", "/") + ".py")


def statuses() -> dict[str, str]:
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    status: dict[str, str] = {}
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        for key, code in data.exit_code_by_key.items():
            status[key] = status_by_exit_code[code] if code is not None else "not checked"
    return status


def report(sample_file: str) -> None:
    names = Path(sample_file).read_text().split()
    status = statuses()
    by_group: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name in names:
        by_group[module_group(name) or "?"][status.get(name, "not generated")].append(name)
    for group, _ in GROUPS:
        print(group, {k: len(v) for k, v in sorted(by_group[group].items())})
        for k, v in sorted(by_group[group].items()):
            if k != "killed":
                for n in v:
                    print(f"    {k}: {n}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generate", action="store_true", help="write mutants/ first (mutmut's generation step)")
    ap.add_argument("--per-group", type=int, default=PER_GROUP)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--report", metavar="SAMPLE_FILE", help="print each group's results for a drawn sample")
    args = ap.parse_args()
    if args.report:
        report(args.report)
        return
    if args.generate:
        generate()
    for name in draw(args.per_group, args.seed, verbose=True):
        print(name)


if __name__ == "__main__":
    main()
