//! `curate jupyter install`: the kernelspec (`kernels/curate/kernel.json`) that tells Jupyter how
//! to start this binary as a kernel, in the folders Jupyter searches (as `ipykernel install` and
//! evcxr's `--install` write it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use curate_stdlib::CurateError;
use jupyter_protocol::JupyterKernelspec;

/// Where the kernelspec goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The user's Jupyter data folder: `$JUPYTER_DATA_DIR`, else `~/.local/share/jupyter`
    /// (`~/Library/Jupyter` on macOS, `%APPDATA%\jupyter` on Windows).
    User,
    /// The active Python environment (`$VIRTUAL_ENV`, `$CONDA_PREFIX`, else `python3`'s
    /// `sys.prefix`): `<prefix>/share/jupyter`.
    SysPrefix,
    /// `<prefix>/share/jupyter`.
    Prefix(PathBuf),
}

fn data_dir(target: &Target) -> Result<PathBuf, CurateError> {
    let fail = |message: String| CurateError::arg("curate jupyter install", message);
    Ok(match target {
        Target::User => match std::env::var_os("JUPYTER_DATA_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => jupyter_zmq_client::user_data_dir().map_err(|e| fail(format!("no user data folder: {e}; use --prefix DIR")))?,
        },
        Target::SysPrefix => {
            let prefix = ["VIRTUAL_ENV", "CONDA_PREFIX"].iter().find_map(|v| std::env::var_os(v).filter(|p| !p.is_empty())).map(PathBuf::from);
            let prefix = match prefix {
                Some(p) => p,
                None => {
                    let python = std::env::var_os("CURATE_PYTHON").unwrap_or_else(|| "python3".into());
                    let out = std::process::Command::new(&python)
                        .args(["-c", "import sys; print(sys.prefix)"])
                        .output()
                        .map_err(|e| fail(format!("--sys-prefix: no active environment (VIRTUAL_ENV, CONDA_PREFIX) and {} did not run: {e}", python.to_string_lossy())))?;
                    let prefix = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    if !out.status.success() || prefix.is_empty() {
                        return Err(fail(format!(
                            "--sys-prefix: no active environment (VIRTUAL_ENV, CONDA_PREFIX) and {} did not give its sys.prefix: {}",
                            python.to_string_lossy(),
                            String::from_utf8_lossy(&out.stderr).trim()
                        )));
                    }
                    PathBuf::from(prefix)
                }
            };
            prefix.join("share/jupyter")
        }
        Target::Prefix(p) => p.join("share/jupyter"),
    })
}

/// The kernelspec: this binary, `jupyter kernel --connection-file {connection_file}`.
fn spec(exe: &Path, display_name: &str) -> JupyterKernelspec {
    JupyterKernelspec {
        argv: vec![exe.display().to_string(), "jupyter".to_string(), "kernel".to_string(), "--connection-file".to_string(), "{connection_file}".to_string()],
        display_name: display_name.to_string(),
        language: "rhai".to_string(),
        metadata: Some(HashMap::from([("debugger".to_string(), serde_json::Value::Bool(false))])),
        // Interrupts arrive as `interrupt_request` on the control channel: no signals, so the
        // same works on Windows and through remote kernel gateways.
        interrupt_mode: Some("message".to_string()),
        // jupyter_client rejects `"env": null`.
        env: Some(HashMap::new()),
    }
}

/// Write `kernels/NAME/kernel.json` and return the folder.
pub fn install(target: &Target, name: &str, display_name: &str) -> Result<PathBuf, CurateError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(CurateError::arg("--name", format!("`{name}`: a kernel name is letters, digits, '-', '_' and '.'")));
    }
    let exe = std::env::current_exe().map_err(|e| CurateError::arg("curate jupyter install", format!("cannot find this program's path: {e}")))?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let dir = data_dir(target)?.join("kernels").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| CurateError::io(&dir, e))?;
    let json = serde_json::to_vec_pretty(&spec(&exe, display_name)).map_err(|e| CurateError::arg("curate jupyter install", e.to_string()))?;
    curate_stdlib::atomic::write_bytes_atomic(&dir.join("kernel.json"), &json)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_starts_this_binary_with_the_connection_file() {
        let s = serde_json::to_value(spec(Path::new("/opt/curate"), "curate")).expect("json");
        assert_eq!(s["argv"][0], "/opt/curate");
        assert_eq!(s["argv"][4], "{connection_file}");
        assert_eq!(s["interrupt_mode"], "message");
        assert!(s["env"].is_object(), "jupyter_client wants a map: {s}");
        assert_eq!(data_dir(&Target::Prefix("/p".into())).expect("dir"), PathBuf::from("/p/share/jupyter"));
    }
}
