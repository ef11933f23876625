//! The optional onnxruntime backend (`runtime = "onnxruntime"`), through `ort` with dynamic
//! loading: nothing is downloaded or linked when curate is built, and the library is found when
//! a model first asks for it, from `ORT_DYLIB_PATH` or else the `onnxruntime` Python package
//! (`onnxruntime-gpu` included) of the Python on `PATH` (`CURATE_PYTHON` names another). A
//! missing or too-old library is an error that says what was looked for; curate never falls
//! back to tract on its own.
//!
//! The session is given only the outputs the declaration names: a declared inner node (VWW's
//! pooled features, say) becomes a graph output, so onnxruntime computes exactly what tract
//! does. Images run in batches (`batch`, 32 by default, onnxruntime's best setting on this
//! box's CPUs) when the model's batch dimension is free; the session's threads are curate's.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{Tensor, ValueType};
use prost::Message;
use tract_onnx::pb;

/// How to get the library, for every error that says it is missing or unusable.
pub const FIX: &str = "install it with `pip install onnxruntime` (or `onnxruntime-gpu` for CUDA) for the Python on PATH (or the one CURATE_PYTHON names), set ORT_DYLIB_PATH to a libonnxruntime shared library, or use runtime = \"tract\"";

/// Why a model could not be loaded: the library (missing, too old, not onnxruntime), or the
/// model itself (outputs, input shape).
#[derive(Debug)]
pub enum LoadError {
    Library(String),
    Model(String),
}

/// The batch size when the declaration gives none.
pub const DEFAULT_BATCH: usize = 32;

/// The loaded library: where it came from and its version, or why it could not be loaded.
struct Library {
    env: Environment,
    path: PathBuf,
    version: String,
}

static LIBRARY: OnceLock<std::result::Result<Library, String>> = OnceLock::new();
static CHOSEN: OnceLock<PathBuf> = OnceLock::new();

/// Load onnxruntime from `path`, whatever the environment says, when it is first needed (for
/// an embedder that ships its own library, and for the tests). Has no effect once loaded.
pub fn use_library(path: PathBuf) {
    let _ = CHOSEN.set(path);
}

/// The onnxruntime library that `runtime = "onnxruntime"` loads: its path and version, or an
/// error that says what was looked for and how to fix it. Loaded once per process.
pub fn library() -> std::result::Result<(PathBuf, String), String> {
    load().map(|l| (l.path.clone(), l.version.clone()))
}

fn load() -> std::result::Result<&'static Library, String> {
    LIBRARY
        .get_or_init(|| {
            let path = find_library()?;
            let builder = ort::init_from(&path).map_err(|e| format!("cannot load onnxruntime from {}: {e} (curate needs onnxruntime 1.17 or newer)", path.display()))?;
            let env = builder.with_name("curate").with_telemetry(false).build().map_err(|e| format!("onnxruntime from {} does not start: {e}", path.display()))?;
            env.set_log_level(ort::logging::LogLevel::Error);
            let version = version_of(&path).unwrap_or_else(|| "of unknown version".into());
            Ok(Library { env, path, version })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The library's own version string (`OrtGetApiBase()->GetVersionString()`).
fn version_of(path: &Path) -> Option<String> {
    // SAFETY: the library was loaded by ort from the same path (a second dlopen only counts a
    // reference); OrtGetApiBase takes no arguments and returns a static table whose
    // GetVersionString returns a static NUL-terminated string.
    unsafe {
        let lib = libloading::Library::new(path).ok()?;
        let base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> = lib.get(b"OrtGetApiBase").ok()?;
        let base = base();
        if base.is_null() {
            return None;
        }
        let s = ((*base).GetVersionString)();
        (!s.is_null()).then(|| std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned())
    }
}

/// `ORT_DYLIB_PATH`, else the `capi` folder of the Python package `onnxruntime`.
fn find_library() -> std::result::Result<PathBuf, String> {
    if let Some(p) = CHOSEN.get() {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("ORT_DYLIB_PATH is {}, which is not a file", p.display())) };
    }
    let python = std::env::var("CURATE_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".to_string());
    // Found, not imported: importing onnxruntime (and numpy) takes 0.4 s, finding it 30 ms.
    let script = "import importlib.util as u, os, sys\ns = u.find_spec('onnxruntime')\nif s is None or not s.origin: sys.exit(\"No module named 'onnxruntime'\")\nprint(os.path.join(os.path.dirname(s.origin), 'capi'))";
    let looked = format!("the onnxruntime library was not found: ORT_DYLIB_PATH is not set, and `{python}`");
    let out = std::process::Command::new(&python).args(["-c", script]).stdin(std::process::Stdio::null()).output().map_err(|e| format!("{looked} could not be run ({e})"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string();
        return Err(format!("{looked} cannot import the onnxruntime package ({last})"));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    library_in(&dir).ok_or_else(|| format!("{looked} has the onnxruntime package, but {} holds no libonnxruntime shared library", dir.display()))
}

/// `libonnxruntime.so.1.32.0`, `libonnxruntime.so`, `libonnxruntime.1.32.0.dylib` or
/// `onnxruntime.dll` in `dir`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name.starts_with("libonnxruntime.so") || (name.starts_with("libonnxruntime.") && name.ends_with(".dylib")) || name == "onnxruntime.dll") && !name.contains("providers")
        })
        .collect();
    found.sort();
    found.pop()
}

/// A model loaded into an onnxruntime session.
pub struct OrtModel {
    session: Mutex<Session>,
    /// The session's output names, in the order the declaration wants them.
    outputs: Vec<String>,
    pub batch: usize,
    /// "CUDAExecutionProvider" or "CPUExecutionProvider".
    pub provider: &'static str,
}

impl OrtModel {
    /// Load the ONNX `bytes`, keep only the `wanted` outputs (graph outputs or inner nodes) and
    /// check the input against `shape` (batch first; a fixed batch of 1 turns batching off).
    pub fn load(bytes: &[u8], wanted: &[String], shape: [usize; 4], batch: Option<usize>) -> std::result::Result<Self, LoadError> {
        let lib = load().map_err(LoadError::Library)?;
        Self::load_in(lib, bytes, wanted, shape, batch).map_err(LoadError::Model)
    }

    fn load_in(lib: &Library, bytes: &[u8], wanted: &[String], shape: [usize; 4], batch: Option<usize>) -> std::result::Result<Self, String> {
        let (bytes, outputs) = select_outputs(bytes, wanted)?;
        let threads = rayon::current_num_threads().max(1);
        let cuda = ep::CUDA::is_available().unwrap_or(false);
        let fail = |e: ort::Error<ort::session::builder::SessionBuilder>| format!("onnxruntime {} ({}): {e}", lib.version, lib.path.display());
        let mut builder = Session::builder(&lib.env)
            .map_err(|e| format!("onnxruntime {}: {e}", lib.version))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(fail)?
            .with_intra_threads(threads)
            .map_err(fail)?
            .with_inter_threads(1)
            .map_err(fail)?;
        if cuda {
            builder = builder.with_execution_providers([ep::CUDA::default().build().error_on_failure()]).map_err(fail)?;
        }
        let session = builder.commit_from_memory(&bytes).map_err(|e| format!("onnxruntime {} cannot load the model: {e}", lib.version))?;
        let inputs = session.inputs();
        if inputs.len() != 1 {
            let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
            return Err(format!("the model has {} inputs ({}); curate feeds one image tensor", inputs.len(), names.join(", ")));
        }
        let fixed_batch = match inputs[0].dtype() {
            ValueType::Tensor { ty, shape: declared, .. } => {
                if *ty != ort::value::TensorElementType::Float32 {
                    return Err(format!("the model's input `{}` is {ty:?}; curate feeds f32 images", inputs[0].name()));
                }
                let dims: Vec<i64> = declared.iter().copied().collect();
                let fits = dims.len() == 4 && dims.iter().zip(shape).skip(1).all(|(&d, s)| d < 0 || d as usize == s);
                if !fits {
                    return Err(format!("the input shape {shape:?} does not fit the model's input `{}` of shape {dims:?} (-1 is free)", inputs[0].name()));
                }
                dims[0] == 1
            }
            other => return Err(format!("the model's input `{}` is not a tensor ({other:?})", inputs[0].name())),
        };
        let batch = if fixed_batch { 1 } else { batch.unwrap_or(DEFAULT_BATCH).max(1) };
        let provider = if cuda { ep::CUDA::NAME } else { "CPUExecutionProvider" };
        Ok(OrtModel { session: Mutex::new(session), outputs, batch, provider })
    }

    /// Run `n` images whose tensors (each of `shape`, batch 1) are concatenated in `data`.
    /// Returns, for each declared output, one vector per image.
    pub fn run(&self, data: Vec<f32>, n: usize, shape: [usize; 4]) -> std::result::Result<Vec<Vec<Vec<f32>>>, String> {
        let dims = [n, shape[1], shape[2], shape[3]];
        let input = Tensor::from_array((dims, data)).map_err(|e| e.to_string())?;
        let mut session = self.session.lock().map_err(|_| "the onnxruntime session was poisoned by a panic".to_string())?;
        let outputs = session.run(ort::inputs![input]).map_err(|e| e.to_string())?;
        let mut all = Vec::with_capacity(self.outputs.len());
        for name in &self.outputs {
            let value = outputs.get(name.as_str()).ok_or_else(|| format!("onnxruntime returned no `{name}`"))?;
            let (out_shape, values) = value.try_extract_tensor::<f32>().map_err(|e| format!("output `{name}`: {e}"))?;
            if out_shape.first().copied() != Some(n as i64) || values.len() % n.max(1) != 0 {
                return Err(format!("output `{name}` has shape {out_shape:?} for a batch of {n}"));
            }
            let per = values.len() / n.max(1);
            all.push(values.chunks(per.max(1)).map(<[f32]>::to_vec).collect());
        }
        Ok(all)
    }
}

/// Make the graph's outputs exactly `wanted`: a graph output by name, or an inner node
/// (`node` or `node:port`) or value by name. Returns the model's bytes (re-encoded only when
/// they changed) and the output names in `wanted`'s order.
fn select_outputs(bytes: &[u8], wanted: &[String]) -> std::result::Result<(Vec<u8>, Vec<String>), String> {
    let mut model = pb::ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model: {e}"))?;
    let graph = model.graph.as_mut().ok_or("the ONNX file has no graph")?;
    let mut outputs = Vec::with_capacity(wanted.len());
    let mut infos = Vec::with_capacity(wanted.len());
    for w in wanted {
        if let Some(o) = graph.output.iter().find(|o| &o.name == w) {
            outputs.push(o.name.clone());
            infos.push(o.clone());
            continue;
        }
        let value = super::graph::node_output(graph, w).or_else(|| graph.node.iter().any(|n| n.output.iter().any(|o| o == w)).then(|| w.clone()));
        let Some(value) = value else {
            let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
            return Err(format!("`{w}` is neither an output nor a node of the model; the model's outputs are: {}", names.join(", ")));
        };
        let float = pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor { elem_type: pb::tensor_proto::DataType::Float as i32, shape: None })), ..Default::default() };
        infos.push(pb::ValueInfoProto { name: value.clone(), r#type: Some(float), ..Default::default() });
        outputs.push(value);
    }
    if graph.output.iter().map(|o| &o.name).eq(outputs.iter()) {
        return Ok((bytes.to_vec(), outputs));
    }
    graph.output = infos;
    Ok((model.encode_to_vec(), outputs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inner_node_becomes_the_only_output() {
        let root = crate::testing::example_workspace();
        let bytes = std::fs::read(root.join("models/vww_96_float.onnx")).expect("model");
        let wanted = vec!["Identity".to_string(), "model/flatten/Reshape".to_string()];
        let (rewritten, outputs) = select_outputs(&bytes, &wanted).expect("selects");
        let graph = pb::ModelProto::decode(rewritten.as_slice()).expect("decodes").graph.expect("graph");
        let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, outputs.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(outputs[0], "Identity");
        let node = graph.node.iter().find(|n| n.name == "model/flatten/Reshape").expect("node");
        assert_eq!(outputs[1], node.output[0], "the node's output value");
        let err = select_outputs(&bytes, &["nope".to_string()]).expect_err("unknown");
        assert!(err.contains("`nope`") && err.contains("Identity"), "{err}");
        // Only the graph's own outputs, in its order: the file is passed on as it is.
        let (same, _) = select_outputs(&bytes, &["Identity".to_string()]).expect("selects");
        assert_eq!(same, bytes);
    }

    /// Both bundled models, on both runtimes, on the same tensors: onnxruntime's outputs, one
    /// image at a time and in one batch, equal tract's to 1e-4.
    #[test]
    fn onnxruntime_equals_tract_on_the_bundled_models() {
        use crate::model::{Model, ModelSpec, Runtime};
        use_library(crate::testing::onnxruntime_library());
        let root = crate::testing::example_workspace();
        let ws = crate::workspace::Workspace::open(&root).expect("example workspace");
        let media = ["media/lfw/face/000.png", "media/lfw/nonface/100.png", "media/cifar/test/bird/0004.jpg", "models/reference/person.png", "models/reference/no_person.png"];
        for name in ["mobilenet", "vww"] {
            let spec = ModelSpec::parse(name, &ws.config.models[name]).expect("declared");
            let tract = Model::load_on(&root, name, &spec, Runtime::Tract).expect("tract loads");
            let ort = Model::load_on(&root, name, &spec, Runtime::Onnxruntime).expect("onnxruntime loads");
            assert_eq!(ort.hash, tract.hash, "the cache key does not depend on the runtime");
            assert_eq!(ort.batch_size(), DEFAULT_BATCH);
            assert!(ort.runtime_description().starts_with("onnxruntime 1."), "{}", ort.runtime_description());
            let tensors: Vec<_> = media
                .iter()
                .map(|m| {
                    let bytes = std::fs::read(root.join(m)).expect("image");
                    let img = crate::preprocess::decode(&bytes).expect("decodes");
                    crate::preprocess::to_tensor(&img, &tract.input).expect("tensor")
                })
                .collect();
            let mut state = tract.spawn().expect("state");
            let mut ort_state = ort.spawn().expect("state");
            let batched = ort.run_batch(tensors.clone()).expect("a batch runs");
            assert_eq!(batched.len(), tensors.len());
            for ((t, b), m) in tensors.into_iter().zip(batched).zip(media) {
                let want = tract.run(&mut state, t.clone()).expect("tract runs");
                let one = ort.run(&mut ort_state, t).expect("onnxruntime runs");
                for (what, a, got) in [
                    ("embedding", &want.embedding, &one.embedding),
                    ("scores", &want.scores, &one.scores),
                    ("batched embedding", &want.embedding, &b.embedding),
                    ("batched scores", &want.scores, &b.scores),
                ] {
                    let (a, got) = (a.as_ref().expect("tract output"), got.as_ref().expect("onnxruntime output"));
                    assert_eq!(a.len(), got.len(), "{name} {what} {m}");
                    let scale = a.iter().fold(0f32, |s, v| s.max(v.abs())).max(1e-6);
                    let worst = a.iter().zip(got).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                    // Measured: at most 2.4e-5 on MobileNetV2's logits (largest 11.5), 9e-6 on its
                    // embedding, 3e-7 on VWW's.
                    assert!(worst <= 1e-4, "{name} {what} on {m}: differs by {worst} (largest value {scale})");
                }
            }
        }
    }
}
