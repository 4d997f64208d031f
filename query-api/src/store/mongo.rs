//! MongoDB reads of the active generation: find, find by ids, count, aggregate, and decoding
//! a document.

use futures::TryStreamExt as _;
use mongodb::bson::{Bson, Document, doc};
use serde::de::DeserializeOwned;

use super::{ReadStore, StoreError};

impl ReadStore {
    /// Up to `limit` documents of `collection` matching `filter`, in `sort` order.
    ///
    /// # Errors
    /// MongoDB unreachable, or a document of another shape.
    pub async fn find(
        &self,
        collection: fn(u64) -> String,
        filter: Document,
        sort: Document,
        limit: i64,
    ) -> Result<Vec<Document>, StoreError> {
        let collection = self.collection::<Document>(collection).await?;
        let cursor = collection.find(filter).sort(sort).limit(limit).await?;
        Ok(cursor.try_collect().await?)
    }

    /// The first document of `collection` matching `filter` (in `sort` order).
    ///
    /// # Errors
    /// MongoDB unreachable, or a document of another shape.
    pub async fn find_one<T>(
        &self,
        collection: fn(u64) -> String,
        filter: Document,
        sort: Document,
    ) -> Result<Option<T>, StoreError>
    where
        T: DeserializeOwned,
    {
        let collection = self.collection::<Document>(collection).await?;
        collection
            .find_one(filter)
            .sort(sort)
            .await?
            .map(decode)
            .transpose()
    }

    /// The documents of `collection` with these ids (no query for none), with `projection`.
    pub(super) async fn find_by_ids(
        &self,
        collection: fn(u64) -> String,
        ids: &[&str],
        projection: Document,
    ) -> Result<Vec<Document>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let collection = self.collection::<Document>(collection).await?;
        let cursor = collection
            .find(doc! { "_id": { "$in": ids } })
            .projection(projection)
            .await?;
        Ok(cursor.try_collect().await?)
    }

    /// How many documents of `collection` match `filter`.
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn count(
        &self,
        collection: fn(u64) -> String,
        filter: Document,
    ) -> Result<u64, StoreError> {
        let collection = self.collection::<Document>(collection).await?;
        Ok(collection.count_documents(filter).await?)
    }

    /// The results of an aggregation pipeline on `collection`.
    ///
    /// # Errors
    /// MongoDB unreachable.
    pub async fn aggregate(
        &self,
        collection: fn(u64) -> String,
        pipeline: Vec<Document>,
    ) -> Result<Vec<Document>, StoreError> {
        let collection = self.collection::<Document>(collection).await?;
        let cursor = collection.aggregate(pipeline).await?;
        Ok(cursor.try_collect().await?)
    }
}

/// The value of `field` in `document` (`Null` when absent): a pagination key.
pub fn field(document: &Document, field: &str) -> Bson {
    document.get(field).cloned().unwrap_or(Bson::Null)
}

/// Deserializes a document read with [`ReadStore::find`] (times from BSON dates, through
/// `read_model::codec`).
///
/// # Errors
/// A document of another shape.
pub fn decode<T: DeserializeOwned>(document: Document) -> Result<T, StoreError> {
    read_model::codec::from_document(document)
        .map_err(|error| StoreError::Internal(format!("malformed read-model document: {error}")))
}
