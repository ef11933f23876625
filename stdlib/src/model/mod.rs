//! Models declared in `curate.toml`, loaded and optimised with tract-onnx once per session.
//!
//! ```toml
//! [models.mobilenet]
//! path = "models/mobilenetv2_imagenet.onnx"
//! input = [224, 224]          # height, width
//! layout = "nchw"             # or "nhwc"
//! channels = "rgb"            # or "gray", "bgr"
//! scale = 0.00392156862       # pixel * scale, then (x - mean) / std
//! mean = [0.485, 0.456, 0.406]
//! std = [0.229, 0.224, 0.225]
//! embedding = "embedding"     # an output or any node name ("node" or "node:1")
//! scores = "logits"           # class scores, if the model has them
//! classes = "models/imagenet_classes.txt"
//! activation = "softmax"      # scores are logits; "none" when they are probabilities already
//! runtime = "onnxruntime"     # or "tract" (the default); also at the top of curate.toml
//! batch = 32                  # images per onnxruntime run (tract runs one per thread)
//! ```
//!
//! The runtime comes from, first to last: `--runtime` or `CURATE_RUNTIME` for one command,
//! the model's `runtime`, the workspace's `runtime`, else tract. Caches are keyed by the
//! model file's hash, so both runtimes fill and read the same cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tract_onnx::prelude::*;

use crate::error::{CurateError, Result};

pub mod graph;
#[cfg(feature = "onnxruntime")]
pub mod onnxruntime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    #[default]
    Rgb,
    Bgr,
    Gray,
}

impl Channels {
    pub fn count(self) -> usize {
        match self {
            Channels::Gray => 1,
            _ => 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub path: String,
    /// [height, width]
    pub input: [usize; 2],
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub channels: Channels,
    #[serde(default = "default_scale")]
    pub scale: f32,
    #[serde(default)]
    pub mean: Option<Vec<f32>>,
    #[serde(default)]
    pub std: Option<Vec<f32>>,
    pub embedding: Option<String>,
    pub scores: Option<String>,
    /// A file with one class name per line, or the names inline.
    pub classes: Option<Classes>,
    /// What turns `scores` into probabilities: "none" (the model outputs probabilities),
    /// "softmax" (logits) or "sigmoid" (independent logits).
    #[serde(default)]
    pub activation: Activation,
    /// Which runtime runs the model (the workspace's, else tract, when not given).
    pub runtime: Option<Runtime>,
    /// Images per run, for runtimes that batch (onnxruntime: 32 by default).
    pub batch: Option<usize>,
}

/// What runs a model: tract (pure Rust, always there) or onnxruntime (found at run time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    #[default]
    Tract,
    Onnxruntime,
}

impl Runtime {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tract" => Ok(Runtime::Tract),
            "onnxruntime" | "ort" => Ok(Runtime::Onnxruntime),
            other => Err(format!("unknown runtime `{other}` (expected tract or onnxruntime)")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Tract => "tract",
            Runtime::Onnxruntime => "onnxruntime",
        }
    }
}

static RUNTIME_OVERRIDE: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();

/// Run every model of this process with `runtime` (the command line's `--runtime`).
pub fn set_runtime_override(runtime: Runtime) {
    let _ = RUNTIME_OVERRIDE.set(runtime);
}

/// The runtime for one command: `--runtime`, else `CURATE_RUNTIME`.
fn runtime_override() -> Result<Option<Runtime>> {
    if let Some(r) = RUNTIME_OVERRIDE.get() {
        return Ok(Some(*r));
    }
    match std::env::var("CURATE_RUNTIME") {
        Ok(v) if !v.trim().is_empty() => Runtime::parse(&v).map(Some).map_err(|m| CurateError::arg("CURATE_RUNTIME", m)),
        _ => Ok(None),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    None,
    Softmax,
    Sigmoid,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Classes {
    File(String),
    Names(Vec<String>),
}

fn default_scale() -> f32 {
    1.0 / 255.0
}

pub const SPEC_KEYS: &[&str] = &["path", "input", "layout", "channels", "scale", "mean", "std", "embedding", "scores", "classes", "activation", "runtime", "batch"];

impl ModelSpec {
    pub fn parse(name: &str, value: &toml::Value) -> Result<Self> {
        value.clone().try_into().map_err(|e: toml::de::Error| CurateError::Model { model: name.to_string(), message: format!("invalid declaration in curate.toml: {}", e.message()) })
    }

    fn per_channel(&self, name: &str, v: &Option<Vec<f32>>, default: f32) -> Result<Vec<f32>> {
        let n = self.channels.count();
        match v {
            None => Ok(vec![default; n]),
            Some(v) if v.len() == n => Ok(v.clone()),
            Some(v) if v.len() == 1 => Ok(vec![v[0]; n]),
            Some(v) => Err(CurateError::Model { model: name.to_string(), message: format!("mean/std need {n} values for {:?} input, got {}", self.channels, v.len()) }),
        }
    }
}

/// What the preprocessing needs to turn an image into the model's input tensor.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub height: usize,
    pub width: usize,
    pub layout: Layout,
    pub channels: Channels,
    pub scale: f32,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl InputSpec {
    pub fn shape(&self) -> [usize; 4] {
        let c = self.channels.count();
        match self.layout {
            Layout::Nchw => [1, c, self.height, self.width],
            Layout::Nhwc => [1, self.height, self.width, c],
        }
    }
}

/// A loaded, optimised model.
pub struct Model {
    pub name: String,
    pub path: PathBuf,
    /// BLAKE3 of the ONNX file: caches are keyed by it.
    pub hash: String,
    pub input: InputSpec,
    pub classes: Option<Vec<String>>,
    pub activation: Activation,
    /// The runtime that runs it.
    pub runtime: Runtime,
    engine: Engine,
    embedding_ix: Option<usize>,
    scores_ix: Option<usize>,
    /// The declared `embedding` node or output, as written in curate.toml.
    pub embedding_node: Option<String>,
}

enum Engine {
    Tract(Arc<TypedRunnableModel>),
    #[cfg(feature = "onnxruntime")]
    Onnxruntime(onnxruntime::OrtModel),
}

/// A model's last linear layer, read from its graph.
#[derive(Debug, Clone)]
pub struct LastLayer {
    pub dim: usize,
    pub classes: usize,
    /// `dim × classes`, row-major.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    /// The nodes it came from, for reports.
    pub nodes: String,
}

/// One image's outputs.
#[derive(Debug, Clone, Default)]
pub struct ModelOutput {
    pub embedding: Option<Vec<f32>>,
    pub scores: Option<Vec<f32>>,
}

impl Model {
    /// Load the model with the runtime its command, declaration or workspace asks for
    /// (`workspace_runtime` is the top-level `runtime` of curate.toml).
    pub fn load(root: &Path, name: &str, spec: &ModelSpec) -> Result<Self> {
        Self::load_with(root, name, spec, None)
    }

    pub fn load_with(root: &Path, name: &str, spec: &ModelSpec, workspace_runtime: Option<Runtime>) -> Result<Self> {
        let runtime = runtime_override()?.or(spec.runtime).or(workspace_runtime).unwrap_or_default();
        Self::load_on(root, name, spec, runtime)
    }

    /// Load the model on exactly `runtime`.
    pub fn load_on(root: &Path, name: &str, spec: &ModelSpec, runtime: Runtime) -> Result<Self> {
        let err = |message: String| CurateError::Model { model: name.to_string(), message };
        let path = root.join(&spec.path);
        let bytes = std::fs::read(&path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let input = InputSpec {
            height: spec.input[0],
            width: spec.input[1],
            layout: spec.layout,
            channels: spec.channels,
            scale: spec.scale,
            mean: spec.per_channel(name, &spec.mean, 0.0)?,
            std: spec.per_channel(name, &spec.std, 1.0)?,
        };
        let mut wanted: Vec<String> = Vec::new();
        for n in spec.embedding.iter().chain(spec.scores.iter()) {
            if !wanted.contains(n) {
                wanted.push(n.clone());
            }
        }
        if wanted.is_empty() {
            return Err(err("declares neither `embedding` nor `scores`: name the output(s) to use".to_string()));
        }
        let engine = match runtime {
            Runtime::Tract => Engine::Tract(Self::tract_plan(&path, &bytes, &wanted, &input, spec.layout).map_err(err)?),
            #[cfg(feature = "onnxruntime")]
            Runtime::Onnxruntime => {
                use onnxruntime::{LoadError, OrtModel, FIX};
                Engine::Onnxruntime(OrtModel::load(&bytes, &wanted, input.shape(), spec.batch).map_err(|e| match e {
                    LoadError::Library(message) => CurateError::Runtime { model: name.to_string(), runtime: "onnxruntime".to_string(), message, help: FIX.to_string() },
                    LoadError::Model(m) => err(format!("{} on onnxruntime: {m}", path.display())),
                })?)
            }
            #[cfg(not(feature = "onnxruntime"))]
            Runtime::Onnxruntime => {
                return Err(CurateError::Runtime {
                    model: name.to_string(),
                    runtime: "onnxruntime".to_string(),
                    message: "this curate was built without the `onnxruntime` feature".to_string(),
                    help: "build curate with its default features, or use runtime = \"tract\"".to_string(),
                })
            }
        };
        let ix = |n: &Option<String>| n.as_ref().and_then(|n| wanted.iter().position(|w| w == n));
        let classes = match &spec.classes {
            None => None,
            Some(Classes::Names(v)) => Some(v.clone()),
            Some(Classes::File(f)) => {
                let p = root.join(f);
                let text = std::fs::read_to_string(&p).map_err(|e| err(format!("cannot read classes {}: {e}", p.display())))?;
                Some(text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect())
            }
        };
        Ok(Model {
            name: name.to_string(),
            path,
            hash,
            input,
            classes,
            activation: spec.activation,
            runtime,
            engine,
            embedding_ix: ix(&spec.embedding),
            scores_ix: ix(&spec.scores),
            embedding_node: spec.embedding.clone(),
        })
    }

    /// tract's optimised plan for the `wanted` outputs at the input's shape.
    fn tract_plan(path: &Path, bytes: &[u8], wanted: &[String], input: &InputSpec, layout: Layout) -> std::result::Result<Arc<TypedRunnableModel>, String> {
        let err = |m: String| m;
        let mut model = tract_onnx::onnx().model_for_read(&mut std::io::Cursor::new(bytes)).map_err(|e| err(format!("{} is not a loadable ONNX model: {e}", path.display())))?;
        if let Err(e) = model.select_outputs_by_name(wanted) {
            let outputs: Vec<String> =
                model.output_outlets().map(|o| o.iter().map(|o| model.outlet_label(*o).map(str::to_string).unwrap_or_else(|| model.node(o.node).name.clone())).collect()).unwrap_or_default();
            return Err(err(format!("{e}; the model's outputs are: {}", outputs.join(", "))));
        }
        let shape = input.shape();
        model.set_input_fact(0, f32::fact(shape).into()).map_err(|e| err(format!("cannot set input shape {shape:?}: {e}")))?;
        let typed = model.into_optimized().map_err(|e| err(format!("the input shape {shape:?} ({layout:?}) does not fit the model: {}", chain(&e))))?;
        typed.into_runnable().map_err(|e| err(chain(&e)))
    }

    /// The linear layer the model applies to its declared `embedding`, read from the graph: a
    /// `MatMul` with a constant `dim × classes` weight (then an `Add` of a constant bias), or a
    /// `Gemm`. Returns the weights (`dim × classes`, row-major), the bias and a description of
    /// the nodes; an error says why the graph has no such layer.
    pub fn last_layer(&self) -> std::result::Result<LastLayer, String> {
        use tract_onnx::pb::NodeProto;
        let emb = self.embedding_node.as_deref().ok_or("the model declares no `embedding`")?;
        let proto = tract_onnx::onnx().proto_model_for_path(&self.path).map_err(|e| format!("cannot read the graph: {e}"))?;
        let graph = proto.graph.as_ref().ok_or("the file has no graph")?;
        // The tensor the embedding names: a node's output, or an output name itself.
        let value = graph::node_output(graph, emb).unwrap_or_else(|| emb.to_string());
        let constant = |name: &str| -> Option<(Vec<usize>, Vec<f32>)> {
            let t = graph.initializer.iter().find(|t| t.name == name).cloned().or_else(|| {
                graph.node.iter().find(|n| n.op_type == "Constant" && n.output.iter().any(|o| o == name)).and_then(|n| n.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.clone()))
            })?;
            let tensor = tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::FopenDataResolver, &t, self.path.parent().and_then(|p| p.to_str())).ok()?;
            let tensor = tensor.cast_to::<f32>().ok()?;
            Some((tensor.shape().to_vec(), tensor.to_plain_array_view::<f32>().ok()?.iter().copied().collect()))
        };
        let consumers = |v: &str| -> Vec<&NodeProto> { graph.node.iter().filter(|n| n.input.iter().any(|i| i == v)).collect() };
        let next = consumers(&value);
        let layer = next
            .iter()
            .find(|n| n.op_type == "MatMul" || n.op_type == "Gemm")
            .ok_or_else(|| format!("`{emb}` does not feed a MatMul or Gemm (it feeds: {})", next.iter().map(|n| n.op_type.as_str()).collect::<Vec<_>>().join(", ")))?;
        let other = layer.input.iter().find(|i| **i != value).ok_or("the layer has one input")?;
        let (shape, w) = constant(other).ok_or_else(|| format!("{} `{}`: its weights `{other}` are not a constant", layer.op_type, layer.name))?;
        let attr = |name: &str| layer.attribute.iter().find(|a| a.name == name);
        let trans_b = layer.op_type == "Gemm" && attr("transB").is_some_and(|a| a.i != 0);
        let gain = if layer.op_type == "Gemm" { attr("alpha").map_or(1.0, |a| a.f) } else { 1.0 };
        if shape.len() != 2 || layer.input.first() != Some(&value) {
            return Err(format!("{} `{}` has weights of shape {shape:?} (expected 2-d, applied to the embedding on the left)", layer.op_type, layer.name));
        }
        let (dim, classes) = if trans_b { (shape[1], shape[0]) } else { (shape[0], shape[1]) };
        let mut weights = vec![0f32; dim * classes];
        for d in 0..dim {
            for c in 0..classes {
                weights[d * classes + c] = gain * if trans_b { w[c * dim + d] } else { w[d * classes + c] };
            }
        }
        let mut nodes = vec![format!("{} `{}`", layer.op_type, layer.name)];
        let bias = if layer.op_type == "Gemm" {
            let beta = attr("beta").map_or(1.0, |a| a.f);
            match layer.input.get(2).and_then(|b| constant(b)) {
                Some((_, b)) if b.len() == classes => b.iter().map(|v| v * beta).collect(),
                Some((_, b)) if b.len() == 1 => vec![b[0] * beta; classes],
                _ => vec![0.0; classes],
            }
        } else {
            let out = layer.output.first().ok_or("the layer has no output")?;
            match consumers(out).into_iter().find(|n| n.op_type == "Add") {
                Some(add) => {
                    let b = add.input.iter().find(|i| *i != out).and_then(|b| constant(b));
                    match b {
                        Some((_, b)) if b.len() == classes || b.len() == 1 => {
                            nodes.push(format!("Add `{}`", add.name));
                            if b.len() == 1 {
                                vec![b[0]; classes]
                            } else {
                                b
                            }
                        }
                        _ => return Err(format!("Add `{}` after the layer does not add a constant bias of {classes}", add.name)),
                    }
                }
                None => vec![0.0; classes],
            }
        };
        Ok(LastLayer { dim, classes, weights, bias, nodes: nodes.join(" + ") })
    }

    pub fn has_scores(&self) -> bool {
        self.scores_ix.is_some()
    }

    pub fn has_embedding(&self) -> bool {
        self.embedding_ix.is_some()
    }

    /// Turn raw class scores into probabilities, as the declaration's `activation` says.
    pub fn probabilities(&self, scores: &[f32]) -> Vec<f32> {
        match self.activation {
            Activation::None => scores.to_vec(),
            Activation::Sigmoid => scores.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect(),
            Activation::Softmax => {
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f32> = scores.iter().map(|&x| (x - max).exp()).collect();
                let sum: f32 = exp.iter().sum();
                exp.iter().map(|e| e / sum).collect()
            }
        }
    }

    /// How many images one run takes: 1 for tract (which runs one image per thread), the
    /// declared or default batch for onnxruntime (1 when the model's batch is fixed).
    pub fn batch_size(&self) -> usize {
        match &self.engine {
            Engine::Tract(_) => 1,
            #[cfg(feature = "onnxruntime")]
            Engine::Onnxruntime(m) => m.batch,
        }
    }

    /// What runs the model, for reports: "tract", or "onnxruntime 1.32.0 (CPUExecutionProvider)".
    pub fn runtime_description(&self) -> String {
        match &self.engine {
            Engine::Tract(_) => "tract".to_string(),
            #[cfg(feature = "onnxruntime")]
            Engine::Onnxruntime(m) => {
                let version = onnxruntime::library().map(|(_, v)| v).unwrap_or_default();
                format!("onnxruntime {version} ({}, batch {})", m.provider, m.batch)
            }
        }
    }

    /// A reusable per-thread state: run many images through one state.
    pub fn spawn(&self) -> Result<ModelState> {
        match &self.engine {
            Engine::Tract(plan) => {
                let state = plan.spawn().map_err(|e| CurateError::Model { model: self.name.clone(), message: chain(&e) })?;
                Ok(ModelState { state: Some(state) })
            }
            #[cfg(feature = "onnxruntime")]
            Engine::Onnxruntime(_) => Ok(ModelState { state: None }),
        }
    }

    pub fn run(&self, state: &mut ModelState, input: Tensor) -> Result<ModelOutput> {
        let err = |message: String| CurateError::Model { model: self.name.clone(), message };
        match (&self.engine, state.state.as_mut()) {
            (Engine::Tract(_), Some(state)) => {
                let outputs = state.run(tvec!(input.into())).map_err(|e| err(chain(&e)))?;
                let take = |ix: Option<usize>| -> Result<Option<Vec<f32>>> {
                    let Some(ix) = ix else { return Ok(None) };
                    let t = outputs.get(ix).ok_or_else(|| err(format!("missing output {ix}")))?;
                    let view = t.to_plain_array_view::<f32>().map_err(|e| err(chain(&e)))?;
                    Ok(Some(view.iter().copied().collect()))
                };
                Ok(ModelOutput { embedding: take(self.embedding_ix)?, scores: take(self.scores_ix)? })
            }
            (Engine::Tract(_), None) => Err(err("a tract run needs a state from spawn()".to_string())),
            #[cfg(feature = "onnxruntime")]
            (Engine::Onnxruntime(_), _) => {
                let mut out = self.run_batch(vec![input])?;
                out.pop().ok_or_else(|| err("onnxruntime returned no output".to_string()))
            }
        }
    }

    /// Run several images in one call (onnxruntime batches them; tract runs them in turn).
    pub fn run_batch(&self, inputs: Vec<Tensor>) -> Result<Vec<ModelOutput>> {
        match &self.engine {
            Engine::Tract(_) => {
                let mut state = self.spawn()?;
                inputs.into_iter().map(|t| self.run(&mut state, t)).collect()
            }
            #[cfg(feature = "onnxruntime")]
            Engine::Onnxruntime(m) => {
                let err = |message: String| CurateError::Model { model: self.name.clone(), message };
                let n = inputs.len();
                if n == 0 {
                    return Ok(Vec::new());
                }
                let shape = self.input.shape();
                let mut data = Vec::with_capacity(n * shape.iter().product::<usize>());
                for t in &inputs {
                    data.extend(t.to_plain_array_view::<f32>().map_err(|e| err(chain(&e)))?.iter());
                }
                // One entry per declared output, in `wanted` order, each with one vector per image.
                let outputs = m.run(data, n, shape).map_err(err)?;
                let column = |ix: Option<usize>| ix.map(|i| outputs.get(i).cloned().ok_or_else(|| err(format!("missing output {i}")))).transpose();
                let (mut emb, mut scores) = (column(self.embedding_ix)?.map(Vec::into_iter), column(self.scores_ix)?.map(Vec::into_iter));
                Ok((0..n).map(|_| ModelOutput { embedding: emb.as_mut().and_then(Iterator::next), scores: scores.as_mut().and_then(Iterator::next) }).collect())
            }
        }
    }
}

pub struct ModelState {
    /// tract's per-thread state; onnxruntime keeps its state in the session.
    state: Option<TypedSimpleState>,
}

fn chain(e: &TractError) -> String {
    format!("{e:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled VWW person detector, through curate's loader and preprocessing, against a
    /// plain tract run of the same file on the same tensor, and on the model's own reference
    /// images. The expected probabilities are ONNX Runtime's on the same file and the same
    /// preprocessing (grayscale replicated to RGB, scaled to [0, 1]): person.png person 0.8611,
    /// no_person.png no_person 0.8870. The assets README says 0.87 and 0.58; the classes agree,
    /// the second figure does not (ONNX Runtime 1.32 gives 0.887, as tract does).
    #[test]
    fn vww_matches_a_direct_tract_run_and_its_reference_images() {
        let root = crate::testing::example_workspace();
        let ws = crate::workspace::Workspace::open(&root).expect("example workspace");
        let spec = ModelSpec::parse("vww", &ws.config.models["vww"]).expect("declared");
        let model = Model::load(&root, "vww", &spec).expect("loads");
        let direct = tract_onnx::onnx().model_for_path(root.join("models/vww_96_float.onnx")).and_then(|m| m.into_optimized()).and_then(|m| m.into_runnable()).expect("tract loads the file directly");
        let mut state = model.spawn().expect("state");
        for (file, class, expected) in [("person.png", 1usize, 0.8611f32), ("no_person.png", 0, 0.8870)] {
            let bytes = std::fs::read(root.join("models/reference").join(file)).expect("reference image");
            let img = crate::preprocess::decode(&bytes).expect("decodes");
            let tensor = crate::preprocess::to_tensor(&img, &model.input).expect("tensor");
            let ours = model.run(&mut state, tensor.clone()).expect("runs").scores.expect("scores");
            let out = direct.run(tvec!(tensor.into())).expect("direct run");
            let theirs: Vec<f32> = out[0].to_plain_array_view::<f32>().expect("f32").iter().copied().collect();
            assert_eq!(ours.len(), 2);
            for (a, b) in ours.iter().zip(&theirs) {
                assert!((a - b).abs() < 1e-5, "{file}: curate {ours:?} vs tract {theirs:?}");
            }
            let probs = model.probabilities(&ours);
            let best = if probs[1] > probs[0] { 1 } else { 0 };
            assert_eq!(best, class, "{file}: {probs:?}");
            assert!((probs[class] - expected).abs() < 1e-3, "{file}: {probs:?}, ONNX Runtime {expected}");
        }
    }
}
