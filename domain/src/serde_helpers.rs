//! Serde helpers for event payloads.

/// `Option<Option<T>>` for a patch field: absent = unchanged, `null` = cleared, value = set.
/// Use with `#[serde(default, skip_serializing_if = "Option::is_none", with = "crate::serde_helpers::double_option")]`.
/// Plain serde would turn `Some(None)` into `null` and read it back as `None`, losing the "cleared".
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T, S>(value: &Option<Option<T>>, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}
