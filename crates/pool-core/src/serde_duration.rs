//! Optional durations in configuration files, written the way people write them: `"30s"`,
//! `"500ms"`, `"1h 30m"` (humantime's syntax). Absent or `null` means off.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(
    value: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(duration) => serializer.collect_str(&humantime::format_duration(*duration)),
        None => serializer.serialize_none(),
    }
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    humantime::parse_duration(&text).map(Some).map_err(|error| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?} ({error}); write it like \"30s\", \"500ms\" or \"2m\""
        ))
    })
}

/// A required duration, in the same syntax (`Metrics::wait_time`).
pub(crate) mod exact {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        super::serialize(&Some(*value), serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        super::deserialize(deserializer)?
            .ok_or_else(|| serde::de::Error::custom("a duration is required here, not null"))
    }
}
