"""xmc: hierarchical extreme multi-label product categorisation.

    import xmc
    m = xmc.Model.load("models/xr")
    m.predict(["Hornby 00 gauge coach"], top_k=3)     # [[(path, confidence), ...]]
    out = m.predict_frame(df)                          # pandas or polars in, the same kind out

The work happens in Rust (the same code as the `xmc` command line); frames cross as Arrow,
without a per-row Python loop. Errors are raised as `xmc.XmcError` with the Rust message.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa


def _onnxruntime_library() -> str | None:
    """The ONNX Runtime library of an installed `onnxruntime` package (found, not imported), for
    the sentence encoder's fast path when `XMC_ORT_LIB` and the models/ folder do not name one."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        from importlib.metadata import version

        major, minor = (int(p) for p in version("onnxruntime").split(".")[:2])
    except Exception:
        return None
    if (major, minor) < (1, 22):  # older than the C API the fast path asks for
        return None
    for location in spec.submodule_search_locations:
        capi = Path(location) / "capi"
        found = sorted(capi.glob("libonnxruntime.so*")) + sorted(capi.glob("libonnxruntime*.dylib")) + sorted(capi.glob("onnxruntime.dll"))
        if found:
            return str(found[0])
    return None


if not os.environ.get("XMC_ORT_LIB"):
    _library = _onnxruntime_library()
    if _library is not None:
        os.environ["XMC_ORT_LIB"] = _library

from . import _xmc
from ._xmc import XmcError, __version__

__all__ = ["Model", "XmcError", "train", "__version__"]


def _search_args(top_k: Any, beam: Any) -> tuple[int, int | None]:
    """`top_k` and `beam` checked before they reach Rust: whole numbers in their ranges (the same
    limits as the command line's), as XmcError naming the keyword, also for ints too large for
    Rust to take."""
    for name, value, limit in (("top_k", top_k, _xmc.MAX_TOP_K), ("beam", beam, _xmc.MAX_BEAM)):
        if value is None and name == "beam":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise XmcError(f"{name} must be a whole number, not {value!r}")
        if not 1 <= value <= limit:
            raise XmcError(f"{name} must be between 1 and {limit}, not {value}")
    return top_k, beam


def _to_arrow(frame: Any) -> tuple[pa.Table, str]:
    """The frame as a pyarrow Table, and which kind it was ("pandas", "polars" or "arrow")."""
    module = type(frame).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(frame, preserve_index=False), "pandas"
    if module == "polars":
        return frame.to_arrow(), "polars"
    if isinstance(frame, pa.RecordBatch):
        return pa.Table.from_batches([frame]), "arrow"
    if isinstance(frame, pa.Table):
        return frame, "arrow"
    if hasattr(frame, "__arrow_c_stream__"):
        return pa.table(frame), "arrow"
    raise TypeError(f"expected a pandas or polars DataFrame or a pyarrow Table, got {type(frame).__name__}")


def _from_arrow(table: pa.Table, kind: str) -> Any:
    if kind == "pandas":
        return table.to_pandas()
    if kind == "polars":
        import polars

        return polars.from_arrow(table)
    return table


class Model:
    """A trained model folder of any method (generative, xr, fused)."""

    def __init__(self, inner: _xmc.Model):
        self._inner = inner

    @classmethod
    def load(cls, path: str | Path, dataset: str | Path | None = None) -> "Model":
        """Loads a model folder. `dataset`: the descriptor whose column mapping applies to
        frames (default: the one the model was trained with)."""
        return cls(_xmc.Model.load(str(path), None if dataset is None else str(dataset)))

    @property
    def method(self) -> str:
        return self._inner.method

    @property
    def labels(self) -> list[str]:
        return self._inner.labels

    @property
    def temperature(self) -> float:
        """The confidence calibration's temperature (1.0 when the folder has none)."""
        return self._inner.temperature

    def predict(self, titles: Sequence[str], top_k: int = 5, beam: int | None = None) -> list[list[tuple[str, float]]]:
        """The top `top_k` (label path, confidence) of each title, best first."""
        if isinstance(titles, str):
            raise TypeError("predict takes a list of titles; wrap a single title in a list")
        top_k, beam = _search_args(top_k, beam)
        return self._inner.predict(list(titles), top_k, beam)

    def predict_frame(self, frame: Any, top_k: int = 5, beam: int | None = None, skip_bad_rows: bool = False) -> Any:
        """Predicts every row of a pandas or polars DataFrame (or pyarrow Table), its columns
        mapped by the model's dataset descriptor. Returns a frame of the same kind with one row
        per input row, in order: id, path, score, labels, scores, error (set, with
        `skip_bad_rows`, for rows that cannot be read; otherwise such a row raises)."""
        top_k, beam = _search_args(top_k, beam)
        table, kind = _to_arrow(frame)
        out = self._inner.predict_arrow(table, top_k, beam, skip_bad_rows)
        return _from_arrow(out, kind)

    def predict_arrow(self, table: pa.Table | pa.RecordBatch, top_k: int = 5, beam: int | None = None, skip_bad_rows: bool = False) -> pa.Table:
        """`predict_frame` for Arrow data (what Spark's mapInArrow hands over)."""
        top_k, beam = _search_args(top_k, beam)
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        return self._inner.predict_arrow(table, top_k, beam, skip_bad_rows)

    def __repr__(self) -> str:
        return repr(self._inner)


def train(config: str | Path | None, output: str | Path, dataset: str | Path | None = None, input: str | Path | None = None, set: Sequence[str] | None = None) -> Path:
    """`xmc train`: the config's stages, ending in a model folder at `output` (which must not
    exist). `config=None` is the recommended recipe, which chooses its settings on the
    catalogue's validation split and needs `dataset`. `set`: overrides such as
    ["ranker.beam=10"]. Returns the folder."""
    opt = lambda p: None if p is None else str(p)
    return Path(_xmc.train(opt(config), str(output), opt(dataset), opt(input), None if set is None else list(set)))
