"""``symmft cache``: what symmft keeps between calls and processes, and how to clear it."""

from __future__ import annotations

from symmft import cache
from symmft.cli.common import command, print_json, print_table


def add_parsers(sub) -> None:
    """The ``cache`` subcommand."""
    p = command(
        sub, "cache", "show or clear symmft's caches",
        "Show the on-disk caches under $SYMMFT_CACHE (default ~/.cache/symmft): derivations (derived mean-field "
        "and Jacobian maps and their generated code, so a new process skips sympy), codegen (generated training "
        "steps), rules (critical rules of 'train --init critical'). Entries are keyed by the cell file's hash and "
        "the symmft version, so a stale entry is never read; --clear deletes them all (set SYMMFT_CACHE=off to "
        "disable the derivation cache).",
        ["symmft cache", "symmft cache --json", "symmft cache --clear"],
    )
    p.add_argument("--clear", action="store_true", help="delete every on-disk cache folder (and empty the memory caches)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=_cache)


def _cache(args) -> None:
    if args.clear:
        cleared = cache.clear_caches(disk=True)
        folders = [c for c in cleared if c.startswith(str(cache.root()))]
        print(f"cleared {len(folders)} folder(s) under {cache.root()}" + "".join(f"\n  {f}" for f in folders))
        return
    summary = cache.summary()
    if args.json:
        print_json(summary)
        return
    print(f"cache root: {summary['root']}  (symmft {summary['version']})")
    rows = [[kind, str(v["files"]), f"{v['bytes'] / 1e6:.2f} MB"] for kind, v in summary["disk"].items()]
    print_table(["folder", "files", "size"], rows or [["(empty)", "0", "0 MB"]])
