//! Converting documents to and from BSON the way the driver does (not human-readable), so
//! times are BSON dates whichever path writes them. `bson::to_document` alone is
//! human-readable and would store times as strings.

use mongodb::bson::{self, Document};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `value` as a BSON document (times as BSON dates).
///
/// # Errors
/// `value` is not a map.
pub fn to_document<T: Serialize + ?Sized>(value: &T) -> Result<Document, bson::ser::Error> {
    #[expect(
        deprecated,
        reason = "the non-deprecated path has no human_readable option in bson 2"
    )]
    let options = bson::SerializerOptions::builder()
        .human_readable(false)
        .build();
    bson::to_document_with_options(value, options)
}

/// A BSON document as `T` (times from BSON dates).
///
/// # Errors
/// The document does not have the shape of `T`.
pub fn from_document<T: DeserializeOwned>(document: Document) -> Result<T, bson::de::Error> {
    #[expect(
        deprecated,
        reason = "the non-deprecated path has no human_readable option in bson 2"
    )]
    let options = bson::DeserializerOptions::builder()
        .human_readable(false)
        .build();
    bson::from_document_with_options(document, options)
}
