"""The email corpus: mails shaped like real clients' and servers', with what each must become."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent / "corpus" / "email"
# A corpus shared between projects, next to the repository, is run too when present.
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "email"


def expected() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "expected.yaml").read_text(encoding="utf-8"))


def own_files() -> list[Path]:
    return sorted(ROOT.glob("*.eml"))


def shared_files() -> list[Path]:
    return sorted(p for p in SHARED.rglob("*") if p.is_file()) if SHARED.is_dir() else []
