//! What ragback reads of a GGUF file before llama.cpp loads it: the header and the few metadata
//! keys that say whether the file is a chat model it can serve, so that a wrong file gets a clear
//! error naming the problem instead of llama.cpp's.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// The first four bytes of every GGUF file.
const MAGIC: &[u8; 4] = b"GGUF";
/// The longest metadata string read (a chat template is a few KiB; vocabularies are skipped).
const MAX_STRING: u64 = 1 << 20;
/// More metadata keys than this is not a model file.
const MAX_KEYS: u64 = 1 << 16;

/// The metadata that matters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GgufInfo {
    /// Format version (2 or 3).
    pub version: u32,
    /// `general.architecture` (`llama`, `qwen2`, `bert`, …).
    pub architecture: String,
    /// `general.name`.
    pub name: Option<String>,
    /// `<architecture>.context_length`: the context the model was trained with.
    pub context_length: Option<u64>,
    /// `tokenizer.chat_template`: a Jinja template; its absence means not a chat model.
    pub chat_template: Option<String>,
}

/// Why a file is not a GGUF model ragback can read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file cannot be read.
    #[error("cannot be read: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start like a GGUF file.
    #[error("is not a GGUF file (it does not start with `GGUF`)")]
    NotGguf,
    /// A GGUF version this reader does not know.
    #[error("is GGUF version {0}; versions 2 and 3 are supported")]
    Version(u32),
    /// The metadata is not well formed.
    #[error("has malformed metadata: {0}")]
    Malformed(String),
}

/// Reads the header and metadata of the GGUF file at `path`.
pub fn read_info(path: &Path) -> Result<GgufInfo, GgufError> {
    let mut reader = Reader(BufReader::new(std::fs::File::open(path)?));
    let mut magic = [0u8; 4];
    reader.0.read_exact(&mut magic).map_err(truncated)?;
    if &magic != MAGIC {
        return Err(GgufError::NotGguf);
    }
    let version = reader.u32()?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    let _tensors = reader.u64()?;
    let keys = reader.u64()?;
    if keys > MAX_KEYS {
        return Err(GgufError::Malformed(format!("{keys} metadata keys")));
    }
    let mut info = GgufInfo {
        version,
        ..GgufInfo::default()
    };
    let mut context_lengths = Vec::new();
    for _ in 0..keys {
        let key = reader.string()?;
        let kind = reader.u32()?;
        match (key.as_str(), kind) {
            ("general.architecture", STRING) => info.architecture = reader.string()?,
            ("general.name", STRING) => info.name = Some(reader.string()?),
            ("tokenizer.chat_template", STRING) => info.chat_template = Some(reader.string()?),
            (key, UINT32 | UINT64) if key.ends_with(".context_length") => {
                let length = if kind == UINT32 {
                    u64::from(reader.u32()?)
                } else {
                    reader.u64()?
                };
                context_lengths.push((key.to_owned(), length));
            }
            _ => reader.skip_value(kind)?,
        }
    }
    if info.architecture.is_empty() {
        return Err(GgufError::Malformed("no general.architecture".into()));
    }
    let context_key = format!("{}.context_length", info.architecture);
    info.context_length = context_lengths
        .into_iter()
        .find(|(key, _)| *key == context_key)
        .map(|(_, length)| length);
    Ok(info)
}

// Metadata value types (GGUF specification).
const UINT8: u32 = 0;
const INT8: u32 = 1;
const UINT16: u32 = 2;
const INT16: u32 = 3;
const UINT32: u32 = 4;
const INT32: u32 = 5;
const FLOAT32: u32 = 6;
const BOOL: u32 = 7;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const UINT64: u32 = 10;
const INT64: u32 = 11;
const FLOAT64: u32 = 12;

fn truncated(error: std::io::Error) -> GgufError {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        GgufError::Malformed("the file ends inside its metadata".into())
    } else {
        GgufError::Io(error)
    }
}

/// Little-endian reads over a buffered file.
struct Reader<R>(R);

impl<R: Read + Seek> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut buffer = [0u8; N];
        self.0.read_exact(&mut buffer).map_err(truncated)?;
        Ok(buffer)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        self.bytes().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        self.bytes().map(u64::from_le_bytes)
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let length = self.u64()?;
        if length > MAX_STRING {
            return Err(GgufError::Malformed(format!(
                "a metadata string of {length} bytes"
            )));
        }
        let mut buffer = vec![0u8; length as usize];
        self.0.read_exact(&mut buffer).map_err(truncated)?;
        String::from_utf8(buffer)
            .map_err(|_| GgufError::Malformed("a metadata string is not UTF-8".into()))
    }

    fn skip(&mut self, bytes: u64) -> Result<(), GgufError> {
        let offset = i64::try_from(bytes)
            .map_err(|_| GgufError::Malformed(format!("a value of {bytes} bytes")))?;
        self.0.seek(SeekFrom::Current(offset))?;
        Ok(())
    }

    /// The size of a fixed-size value type.
    fn width(kind: u32) -> Option<u64> {
        match kind {
            UINT8 | INT8 | BOOL => Some(1),
            UINT16 | INT16 => Some(2),
            UINT32 | INT32 | FLOAT32 => Some(4),
            UINT64 | INT64 | FLOAT64 => Some(8),
            _ => None,
        }
    }

    fn skip_value(&mut self, kind: u32) -> Result<(), GgufError> {
        if let Some(width) = Self::width(kind) {
            return self.skip(width);
        }
        match kind {
            STRING => {
                let length = self.u64()?;
                self.skip(length)
            }
            ARRAY => {
                let item = self.u32()?;
                let count = self.u64()?;
                if let Some(width) = Self::width(item) {
                    let bytes = count.checked_mul(width).ok_or_else(|| {
                        GgufError::Malformed(format!("an array of {count} items"))
                    })?;
                    return self.skip(bytes);
                }
                if item == ARRAY {
                    return Err(GgufError::Malformed("an array of arrays".into()));
                }
                for _ in 0..count {
                    self.skip_value(item)?;
                }
                Ok(())
            }
            other => Err(GgufError::Malformed(format!("value type {other}"))),
        }
    }
}

/// Writing GGUF headers, for tests of the reader and of what loads a model.
#[cfg(test)]
pub(crate) mod write {
    /// A GGUF file with no tensors and these metadata entries.
    pub(crate) fn gguf(entries: &[(&str, Value)]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.extend((entries.len() as u64).to_le_bytes());
        for (key, value) in entries {
            string(&mut out, key);
            value.write(&mut out);
        }
        out
    }

    fn string(out: &mut Vec<u8>, text: &str) {
        out.extend((text.len() as u64).to_le_bytes());
        out.extend(text.as_bytes());
    }

    /// A metadata value.
    pub(crate) enum Value {
        Text(&'static str),
        U32(u32),
        Texts(Vec<&'static str>),
        /// Strings built at run time.
        Strings(Vec<String>),
        F32(f32),
        F32s(Vec<f32>),
        I32s(Vec<i32>),
    }

    impl Value {
        fn write(&self, out: &mut Vec<u8>) {
            match self {
                Value::Text(text) => {
                    out.extend(super::STRING.to_le_bytes());
                    string(out, text);
                }
                Value::U32(n) => {
                    out.extend(super::UINT32.to_le_bytes());
                    out.extend(n.to_le_bytes());
                }
                Value::Texts(texts) => {
                    out.extend(super::ARRAY.to_le_bytes());
                    out.extend(super::STRING.to_le_bytes());
                    out.extend((texts.len() as u64).to_le_bytes());
                    for text in texts {
                        string(out, text);
                    }
                }
                Value::Strings(texts) => {
                    out.extend(super::ARRAY.to_le_bytes());
                    out.extend(super::STRING.to_le_bytes());
                    out.extend((texts.len() as u64).to_le_bytes());
                    for text in texts {
                        string(out, text);
                    }
                }
                Value::F32(value) => {
                    out.extend(super::FLOAT32.to_le_bytes());
                    out.extend(value.to_le_bytes());
                }
                Value::I32s(values) => {
                    out.extend(super::ARRAY.to_le_bytes());
                    out.extend(super::INT32.to_le_bytes());
                    out.extend((values.len() as u64).to_le_bytes());
                    for value in values {
                        out.extend(value.to_le_bytes());
                    }
                }
                Value::F32s(values) => {
                    out.extend(super::ARRAY.to_le_bytes());
                    out.extend(super::FLOAT32.to_le_bytes());
                    out.extend((values.len() as u64).to_le_bytes());
                    for value in values {
                        out.extend(value.to_le_bytes());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::write::{Value, gguf};
    use super::*;

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        file
    }

    #[test]
    fn the_keys_that_matter_are_read_and_the_others_skipped() {
        let bytes = gguf(&[
            ("general.architecture", Value::Text("llama")),
            ("general.name", Value::Text("Tiny")),
            ("tokenizer.ggml.tokens", Value::Texts(vec!["<s>", "a", "b"])),
            ("tokenizer.ggml.scores", Value::F32s(vec![0.0, 1.0, 2.0])),
            ("bert.context_length", Value::U32(512)),
            ("llama.context_length", Value::U32(8192)),
            (
                "tokenizer.chat_template",
                Value::Text("{{ '<|im_start|>' }}"),
            ),
        ]);
        let info = read_info(file(&bytes).path()).unwrap();
        assert_eq!(
            info,
            GgufInfo {
                version: 3,
                architecture: "llama".into(),
                name: Some("Tiny".into()),
                context_length: Some(8192),
                chat_template: Some("{{ '<|im_start|>' }}".into()),
            }
        );
    }

    #[test]
    fn what_is_not_a_gguf_model_is_named() {
        assert!(matches!(
            read_info(file(b"PK\x03\x04 a zip").path()),
            Err(GgufError::NotGguf)
        ));
        assert!(matches!(
            read_info(file(b"GG").path()),
            Err(GgufError::Malformed(_))
        ));
        let mut old = gguf(&[]);
        old[4] = 1;
        assert!(matches!(
            read_info(file(&old).path()),
            Err(GgufError::Version(1))
        ));
        let nameless = gguf(&[("general.name", Value::Text("x"))]);
        assert!(matches!(
            read_info(file(&nameless).path()),
            Err(GgufError::Malformed(m)) if m.contains("architecture")
        ));
        let whole = gguf(&[("general.architecture", Value::Text("llama"))]);
        assert!(matches!(
            read_info(file(&whole[..whole.len() - 3]).path()),
            Err(GgufError::Malformed(m)) if m.contains("ends")
        ));
        assert!(matches!(
            read_info(Path::new("/nonexistent/model.gguf")),
            Err(GgufError::Io(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500)
        ))]

        #[test]
        fn arbitrary_bytes_after_the_magic_never_panic(tail in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut bytes = b"GGUF".to_vec();
            bytes.extend(tail);
            let _ = read_info(file(&bytes).path());
        }
    }
}
