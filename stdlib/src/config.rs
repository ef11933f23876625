//! `curate.toml`: the workspace's name, manifest location, script limits and (later) models.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{CurateError, Result};

pub const CONFIG_FILE: &str = "curate.toml";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A short name for the dataset, shown in prompts and reports.
    pub name: String,
    /// The manifest, relative to the workspace root, or a URL in object storage (`s3://…`).
    #[serde(default = "default_manifest")]
    pub manifest: String,
    /// Where relative image paths in the manifest are resolved from, relative to the workspace.
    #[serde(default = "default_media")]
    pub media: String,
    /// What runs the workspace's models: "tract" (the default) or "onnxruntime"; a model's own
    /// `runtime` and the command's `--runtime` take precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<crate::model::Runtime>,
    #[serde(default)]
    pub limits: Limits,
    /// Model declarations; parsed by the model loader, kept opaque here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, toml::Value>,
    /// `curate test` settings.
    #[serde(default, skip_serializing_if = "TestConfig::is_default")]
    pub test: TestConfig,
    /// Which model to use when a primitive names none and several could serve.
    #[serde(default, skip_serializing_if = "Defaults::is_default")]
    pub defaults: Defaults,
}

/// `[defaults]`: `embedding = "mobilenet"` picks the embedding model for `embed`, `similar` and
/// probes when several models declare an `embedding` (a detector's own pooled features, say).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    pub embedding: Option<String>,
    pub scores: Option<String>,
}

impl Defaults {
    fn is_default(&self) -> bool {
        self == &Defaults::default()
    }
}

/// `[test]`: what `curate test` runs against when the command line does not say.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TestConfig {
    /// The model whose predictions the tests judge.
    pub model: Option<String>,
}

impl TestConfig {
    fn is_default(&self) -> bool {
        self == &TestConfig::default()
    }
}

/// Limits on what a script may do, so that a runaway loop ends with a clear error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_operations: 500_000_000, max_call_levels: 64, max_string_size: 64 * 1024 * 1024, max_array_size: 50_000_000, max_map_size: 1_000_000 }
    }
}

fn default_manifest() -> String {
    "manifest.parquet".to_string()
}

fn default_media() -> String {
    ".".to_string()
}

impl Config {
    pub fn new(name: &str) -> Self {
        Config {
            name: name.to_string(),
            manifest: default_manifest(),
            media: default_media(),
            runtime: None,
            limits: Limits::default(),
            models: BTreeMap::new(),
            test: TestConfig::default(),
            defaults: Defaults::default(),
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CurateError::io(path, e))?;
        Self::parse(&text).map_err(|message| CurateError::Config { path: path.to_path_buf(), message })
    }

    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    pub fn to_toml(&self) -> String {
        // Serialising a struct of strings and integers cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_keys() {
        let mut c = Config::new("people");
        assert_eq!(Config::parse(&c.to_toml()), Ok(c.clone()));
        c.runtime = Some(crate::model::Runtime::Onnxruntime);
        c.models.insert("m".into(), toml::Value::Table(toml::map::Map::from_iter([("path".to_string(), toml::Value::String("m.onnx".into()))])));
        assert!(c.to_toml().contains("runtime = \"onnxruntime\""), "{}", c.to_toml());
        assert_eq!(Config::parse(&c.to_toml()), Ok(c));
        let err = Config::parse("name = \"x\"\nruntime = \"cuda\"\n").expect_err("an unknown runtime");
        assert!(err.contains("cuda") && err.contains("onnxruntime"), "{err}");
        let err = Config::parse("name = \"x\"\nmanifets = \"m.parquet\"\n").expect_err("an unknown key");
        assert!(err.contains("manifets"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }
}
