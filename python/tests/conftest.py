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


# One product per row, written as a catalogue's file has it (extra white space, a currency sign,
# an empty description, no store column), and the same products as a client sends them to the
# server: every front door must clean and render them alike.
MESSY_CSV = (
    "id,title,description,manufacturer,price,category_path\n"
    "p1,\"  Hornby   00 Gauge  BR Coach \",,Hornby,£24.99,\n"
    "p2,Lego City Fire Station,,LEGO,49.99,\n"
    "p3,\" Kato  Electric Locomotive\",\"  N gauge  \",Kato,,\n"
)
MESSY_JSON = [
    {"id": "p1", "title": "  Hornby   00 Gauge  BR Coach ", "manufacturer": "Hornby", "price": 24.99},
    {"id": "p2", "title": "Lego City Fire Station", "manufacturer": "LEGO", "price": 49.99},
    {"id": "p3", "title": " Kato  Electric Locomotive", "description": "  N gauge  ", "manufacturer": "Kato"},
]


def assert_same_answers(got: dict, want: dict, door: str) -> None:
    """`got` and `want`: id -> (labels, scores), as two front doors answered."""
    assert got.keys() == want.keys(), door
    for key, (labels, scores) in got.items():
        assert labels == want[key][0], f"{door}: {key}"
        assert all(abs(a - b) < 1e-5 for a, b in zip(scores, want[key][1])), f"{door}: {key}"
