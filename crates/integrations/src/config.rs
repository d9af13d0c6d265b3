//! What every settings struct shares: durations read as whole milliseconds or seconds (the unit is
//! in the key's name, `timeout_secs`), parsed once into [`Duration`]s.

/// A duration given in milliseconds.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Reads a whole number of milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// A duration given in seconds.
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Reads a whole number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}
