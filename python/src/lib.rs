//! `import xmc`: the Rust side of the Python package. A model folder of any method loads into
//! [`Model`]; lists of titles and Arrow tables (what pandas, polars and Spark hand over) are
//! predicted by the same [`xmc_methods::Predictor`] as `xmc predict`, their inputs rendered by
//! the same [`xmc_methods::ModelInput`] and their rows made by the same
//! [`xmc_methods::PredictionRow`], with the GIL released;
//! [`train`] is `xmc train`. Errors are raised as `xmc.XmcError` with the Rust message.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef};
use pyo3::create_exception;
use pyo3::prelude::*;
use pyo3_arrow::PyTable;
use xmc_methods::{ModelInput, PredictionRow, Predictor, ProductFields};
use xmc_data::ingest::{Field, RawRow, mapped_columns};
use xmc_data::{DatasetDescriptor, ProductRecord};

create_exception!(_xmc, XmcError, pyo3::exceptions::PyException, "An error from xmc; the message names the file, row or field.");

fn err(e: impl std::fmt::Display) -> PyErr {
    XmcError::new_err(e.to_string())
}

fn anyhow_err(e: anyhow::Error) -> PyErr {
    XmcError::new_err(format!("{e:#}"))
}

/// Runs `f` at the boundary with Python: a Rust panic (a bug) becomes `xmc.XmcError` with its
/// message instead of pyo3's `PanicException`, which derives from BaseException and escapes
/// `except Exception`. Every function and method the module exports goes through here
/// (tests/architecture.rs checks it).
fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            Err(XmcError::new_err(format!("internal error (a bug in xmc; please report it): {message}")))
        }
    }
}

/// A count keyword from Python (`top_k=`, `beam=`) in `1..=max`, named in the error.
fn count_arg(name: &str, value: i64, max: usize) -> PyResult<usize> {
    if value < 1 || value as u64 > max as u64 {
        return Err(err(format!("{name} must be between 1 and {max}, not {value}")));
    }
    Ok(value as usize)
}

/// Records predicted together (bounds the memory of rendered inputs and features).
const CHUNK: usize = 4096;

/// A trained model folder of any method (generative, xr, fused).
#[pyclass(frozen, module = "xmc._xmc")]
struct Model {
    predictor: Arc<Predictor>,
    input: ModelInput,
    path: PathBuf,
}

/// The output columns of `predict_arrow`.
fn output_schema() -> SchemaRef {
    let list = |t: DataType| DataType::List(Arc::new(ArrowField::new("item", t, true)));
    Arc::new(Schema::new(vec![
        ArrowField::new("id", DataType::Utf8, false),
        ArrowField::new("path", DataType::Utf8, true),
        ArrowField::new("score", DataType::Float32, true),
        ArrowField::new("labels", list(DataType::Utf8), true),
        ArrowField::new("scores", list(DataType::Float32), true),
        ArrowField::new("error", DataType::Utf8, true),
    ]))
}

/// Each mapped field's column of `batch` as strings (`None` when the table lacks it; the title
/// is required).
fn field_columns(batch: &RecordBatch, desc: &DatasetDescriptor) -> PyResult<Vec<Option<StringArray>>> {
    let schema = batch.schema();
    let mut out = Vec::with_capacity(Field::ALL.len());
    for (field, column) in Field::ALL.into_iter().zip(mapped_columns(&desc.columns)) {
        let found = column.and_then(|c| schema.index_of(c).ok());
        match (found, column) {
            (Some(i), _) => {
                let strings = arrow_cast::cast(batch.column(i), &DataType::Utf8).map_err(|e| err(format!("column `{}`: {e}", schema.field(i).name())))?;
                out.push(Some(strings.as_string::<i32>().clone()));
            }
            (None, Some(column)) if field == Field::Title => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(err(format!(
                    "the table has no title column `{column}` (the model's dataset descriptor maps the title to it); its columns: {}",
                    names.join(", ")
                )));
            }
            _ => out.push(None),
        }
    }
    Ok(out)
}

impl Model {
    /// The top `top_k` of each input text, as (path, confidence) pairs.
    fn rank(&self, texts: &[&str], top_k: usize, beam: Option<usize>) -> anyhow::Result<Vec<Vec<(String, f32)>>> {
        let beam = beam.unwrap_or(self.predictor.default_beam()).max(top_k);
        let labels = self.predictor.labels();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(CHUNK) {
            let ranked = self.predictor.predict_texts(chunk, beam, top_k, |_| {})?;
            out.extend(ranked.iter().map(|r| PredictionRow::from_ranked("", None, r, labels).top_k));
        }
        Ok(out)
    }

    fn load_inner(py: Python<'_>, path: PathBuf, dataset: Option<PathBuf>) -> PyResult<Self> {
        let descriptor_path = dataset.unwrap_or_else(|| path.join(xmc_methods::DATASET_FILE));
        let (predictor, descriptor) = py.detach(|| -> anyhow::Result<_> {
            let predictor = Predictor::load(&path)?;
            let descriptor = DatasetDescriptor::load(&descriptor_path)
                .map_err(|e| anyhow::anyhow!("loading the dataset descriptor {} (name one with dataset=...): {e}", descriptor_path.display()))?;
            Ok((predictor, descriptor))
        })
        .map_err(anyhow_err)?;
        let input = predictor.input(descriptor);
        Ok(Model { predictor: Arc::new(predictor), input, path })
    }

    fn predict_inner(&self, py: Python<'_>, titles: Vec<String>, top_k: usize, beam: Option<usize>) -> PyResult<Vec<Vec<(String, f32)>>> {
        if let Some(i) = titles.iter().position(|t| t.trim().is_empty()) {
            return Err(err(format!("title {i} is empty")));
        }
        py.detach(|| {
            let texts = titles
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let fields = ProductFields { title: t.clone(), ..ProductFields::default() };
                    self.input.text_of_fields(&fields).map_err(|e| anyhow::anyhow!("title {i}: {}: {}", e.kind, e.reason))
                })
                .collect::<anyhow::Result<Vec<String>>>()?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            self.rank(&refs, top_k, beam)
        })
        .map_err(anyhow_err)
    }

    fn predict_arrow_inner<'py>(&self, py: Python<'py>, table: PyTable, top_k: usize, beam: Option<usize>, skip_bad_rows: bool) -> PyResult<Bound<'py, PyAny>> {
        let (batches, _) = table.into_inner();
        let out = py.detach(|| -> PyResult<Vec<RecordBatch>> {
            // A panic on the worker side of `detach` is caught here too, with the GIL released.
            guarded(|| {
                let mut first_row = 0;
                let mut out = Vec::with_capacity(batches.len());
                for batch in &batches {
                    // Large batches are cut so that memory holds one chunk of inputs at a time.
                    let mut offset = 0;
                    while offset < batch.num_rows() {
                        let len = CHUNK.min(batch.num_rows() - offset);
                        out.push(self.predict_batch(&batch.slice(offset, len), first_row + offset, top_k, beam, skip_bad_rows)?);
                        offset += len;
                    }
                    first_row += batch.num_rows();
                }
                Ok(out)
            })
        })?;
        PyTable::try_new(out, output_schema())?.into_pyarrow(py)
    }

    /// One output batch for one input batch: a row per input row, in order.
    fn predict_batch(&self, batch: &RecordBatch, first_row: usize, top_k: usize, beam: Option<usize>, skip_bad_rows: bool) -> PyResult<RecordBatch> {
        let columns = field_columns(batch, self.input.descriptor())?;
        let mut ids = Vec::with_capacity(batch.num_rows());
        let mut records: Vec<Result<ProductRecord, String>> = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let row_number = (first_row + i + 1) as u64;
            let mut row = RawRow { line: row_number, ..RawRow::default() };
            for (value, column) in row.values.iter_mut().zip(&columns) {
                *value = column.as_ref().filter(|c| c.is_valid(i)).map(|c| c.value(i).to_string());
            }
            let record = self.input.record(&row).map_err(|issue| format!("{}: {}", issue.kind, issue.reason));
            if let Err(reason) = &record
                && !skip_bad_rows
            {
                return Err(err(format!("row {row_number}: {reason} (pass skip_bad_rows=True to get an `error` for such rows instead)")));
            }
            ids.push(match &record {
                Ok(r) => r.id.clone(),
                Err(_) => row.get(Field::Id).map(str::to_string).unwrap_or_else(|| format!("row-{row_number}")),
            });
            records.push(record);
        }
        let texts: Vec<String> = records.iter().filter_map(|r| r.as_ref().ok()).map(|r| self.input.text(r)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ranked = self.rank(&refs, top_k, beam).map_err(anyhow_err)?;
        let mut ranked = ranked.into_iter();
        let (mut path, mut score, mut error) = (StringBuilder::new(), Float32Builder::new(), StringBuilder::new());
        let (mut labels, mut scores) = (ListBuilder::new(StringBuilder::new()), ListBuilder::new(Float32Builder::new()));
        for record in &records {
            match record {
                Ok(_) => {
                    let top = ranked.next().unwrap_or_default();
                    path.append_option(top.first().map(|t| t.0.as_str()));
                    score.append_option(top.first().map(|t| t.1));
                    for (p, s) in &top {
                        labels.values().append_value(p);
                        scores.values().append_value(*s);
                    }
                    labels.append(true);
                    scores.append(true);
                    error.append_null();
                }
                Err(reason) => {
                    path.append_null();
                    score.append_null();
                    labels.append(false);
                    scores.append(false);
                    error.append_value(reason);
                }
            }
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(path.finish()),
            Arc::new(score.finish()) as Arc<Float32Array>,
            Arc::new(labels.finish()),
            Arc::new(scores.finish()),
            Arc::new(error.finish()),
        ];
        RecordBatch::try_new(output_schema(), arrays).map_err(err)
    }
}

/// `top_k` and `beam` keywords checked against their ranges ([`xmc_methods::limits`]).
fn search_args(top_k: i64, beam: Option<i64>) -> PyResult<(usize, Option<usize>)> {
    let top_k = count_arg("top_k", top_k, xmc_methods::limits::MAX_TOP_K)?;
    let beam = beam.map(|b| count_arg("beam", b, xmc_methods::limits::MAX_BEAM)).transpose()?;
    Ok((top_k, beam))
}

#[pymethods]
impl Model {
    /// Loads a model folder written by `xmc train` or an experiment's train stage. `dataset`:
    /// the descriptor whose column mapping and cleaning rules apply to frames (default: the one
    /// the model was trained with, `<path>/dataset.toml`).
    #[staticmethod]
    #[pyo3(signature = (path, dataset=None))]
    fn load(py: Python<'_>, path: PathBuf, dataset: Option<PathBuf>) -> PyResult<Self> {
        guarded(|| Self::load_inner(py, path, dataset))
    }

    /// The method the folder holds: "generative", "xr", "fused" or "cluster-search".
    #[getter]
    fn method(&self) -> &'static str {
        self.predictor.method()
    }

    /// The folder it was loaded from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Every label path the model can predict, by label id.
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.predictor.labels().labels.iter().map(|l| l.path.clone()).collect()
    }

    /// The temperature of the confidence calibration (1.0 when the folder has none).
    #[getter]
    fn temperature(&self) -> f64 {
        self.predictor.calibration().temperature
    }

    /// The top `top_k` (label path, confidence) of each title, best first (`top_k` 1 to 1000,
    /// `beam` 1 to 1000). Titles are cleaned and rendered as records with only a title (and the
    /// dataset's store name), as every front door renders a record.
    #[pyo3(signature = (titles, top_k=5, beam=None))]
    fn predict(&self, py: Python<'_>, titles: Vec<String>, top_k: i64, beam: Option<i64>) -> PyResult<Vec<Vec<(String, f32)>>> {
        guarded(|| {
            let (top_k, beam) = search_args(top_k, beam)?;
            self.predict_inner(py, titles, top_k, beam)
        })
    }

    /// Predicts every row of an Arrow table (anything with `__arrow_c_stream__`: pyarrow,
    /// polars, ...), its columns mapped by the model's dataset descriptor. Returns a
    /// pyarrow.Table with one row per input row, in order: id, path, score, labels, scores, error.
    /// `top_k` 1 to 1000, `beam` 1 to 1000.
    #[pyo3(signature = (table, top_k=5, beam=None, skip_bad_rows=false))]
    fn predict_arrow<'py>(&self, py: Python<'py>, table: PyTable, top_k: i64, beam: Option<i64>, skip_bad_rows: bool) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| {
            let (top_k, beam) = search_args(top_k, beam)?;
            self.predict_arrow_inner(py, table, top_k, beam, skip_bad_rows)
        })
    }

    fn __repr__(&self) -> String {
        format!("xmc.Model(path={:?}, method={:?}, labels={})", self.path.display().to_string(), self.method(), self.predictor.labels().len())
    }
}

/// `xmc train`: the config's stages (`None`: the recommended recipe, which needs `dataset`) up
/// to a model folder at `output` (which must not exist). `set`: overrides such as
/// ["ranker.beam=10"].
#[pyfunction]
#[pyo3(signature = (config, output, dataset=None, input=None, set=None))]
fn train(py: Python<'_>, config: Option<PathBuf>, output: PathBuf, dataset: Option<PathBuf>, input: Option<PathBuf>, set: Option<Vec<String>>) -> PyResult<PathBuf> {
    guarded(|| {
        let args = xmc_pipeline::TrainFolder { config, dataset, input, output: output.clone(), set: set.unwrap_or_default() };
        py.detach(|| guarded(|| xmc_pipeline::train_folder(&args).map_err(anyhow_err)))?;
        Ok(output)
    })
}

/// Panics with `message` inside the boundary every exported function uses: the tests check
/// that a Rust panic reaches Python as `xmc.XmcError` and leaves the interpreter usable.
#[pyfunction]
fn _panic_at_the_boundary(message: String) -> PyResult<()> {
    guarded(|| panic!("{message}"))
}

#[pymodule]
fn _xmc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_at_the_boundary, m)?)?;
    m.add("XmcError", m.py().get_type::<XmcError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_TOP_K", xmc_methods::limits::MAX_TOP_K)?;
    m.add("MAX_BEAM", xmc_methods::limits::MAX_BEAM)?;
    Ok(())
}
