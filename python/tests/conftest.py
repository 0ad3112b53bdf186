"""Fixtures: a small XR model trained once per session on the bundled sample, through
`xmc.train` (the same code as `xmc train`)."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

import xmc

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "datasets" / "amazon-uk-sample" / "products.csv"


def xmc_cli() -> list[str]:
    """The `xmc` command line: $XMC_CLI (e.g. "target/release/xtask xmc"), else through cargo."""
    given = os.environ.get("XMC_CLI")
    return shlex.split(given) if given else ["cargo", "run", "--release", "--quiet", "-p", "xtask", "--", "xmc"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*xmc_cli(), *args], cwd=REPO, check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "xr"
    work = tmp_path_factory.mktemp("work")
    config = work / "xr.toml"
    # PIFA label embeddings and TF-IDF features: no sentence encoder needed, trains in seconds.
    config.write_text(
        'name = "py"\nmethod = "xr"\noutput_dir = {out!r}\n[data]\ndataset = {ds!r}\n[embed]\nkind = "pifa"\n'
        "[tree]\nbranching = 6\n[ranker]\nfeatures = \"sparse\"\nbeam = 10\ntop_k = 10\n".format(
            out=str(work / "experiments"), ds=str(REPO / "datasets" / "amazon-uk-sample.toml")
        )
    )
    returned = xmc.train(config, out)
    assert returned == out
    return out
