//! Times in documents: a BSON date in MongoDB, an RFC 3339 string in JSON (Redis, HTTP).
//!
//! Use with `#[serde(with = "read_model::time")]`. BSON dates hold milliseconds, so the projector
//! truncates times to milliseconds ([`truncate`]) before it stores them anywhere: MongoDB and
//! Redis then hold the same value.

use chrono::{DateTime, TimeZone as _, Utc};
use mongodb::bson;
use serde::{Deserialize as _, Deserializer, Serialize as _, Serializer};

/// Serializes as a BSON date for BSON, as RFC 3339 otherwise.
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        time.serialize(serializer)
    } else {
        bson::DateTime::from_millis(time.timestamp_millis()).serialize(serializer)
    }
}

/// Reads a BSON date (BSON) or an RFC 3339 string (JSON).
///
/// # Errors
/// A value that is neither.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    if deserializer.is_human_readable() {
        DateTime::<Utc>::deserialize(deserializer)
    } else {
        let date = bson::DateTime::deserialize(deserializer)?;
        Ok(from_bson(date))
    }
}

/// The same for an optional time: `#[serde(default, with = "read_model::time::option")]`.
pub mod option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize as _, Deserializer, Serializer};

    /// `None` as null, a time as [`super::serialize`] writes it.
    ///
    /// # Errors
    /// Whatever the serializer reports.
    pub fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => super::serialize(time, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Null or absent as `None`, else as [`super::deserialize`] reads it.
    ///
    /// # Errors
    /// A value that is neither null nor a time.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wrapped(#[serde(with = "super")] DateTime<Utc>);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(time)| time))
    }
}

/// A BSON date as a chrono time.
#[must_use]
pub fn from_bson(date: bson::DateTime) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(date.timestamp_millis())
        .single()
        .unwrap_or_default()
}

/// `time` without its sub-millisecond part (what a BSON date can hold).
#[must_use]
pub fn truncate(time: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(time.timestamp_millis())
        .single()
        .unwrap_or(time)
}
