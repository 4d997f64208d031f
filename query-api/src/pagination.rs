//! Opaque cursor pagination (keyset): a cursor names the sort key and `_id` of the last item of
//! a page; the next page is the items strictly after it in the same order. Pages stay correct
//! while documents are inserted, and no page ever costs a `skip`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mongodb::bson::{Bson, Document, doc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// The most items one page may hold.
pub const MAX_LIMIT: u32 = 100;
/// Items per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 20;

/// One page of a list and the cursor of the next one (`None` on the last page).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

impl Order {
    fn sign(self) -> i32 {
        match self {
            Self::Asc => 1,
            Self::Desc => -1,
        }
    }
}

/// The order of a list: one field, then `_id` to break ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sorting {
    /// The document field.
    pub field: &'static str,
    /// Its direction.
    pub order: Order,
}

impl Sorting {
    /// The MongoDB sort document.
    pub fn sort(&self) -> Document {
        doc! { self.field: self.order.sign(), "_id": self.order.sign() }
    }
}

/// A sort key as it travels in a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Key {
    #[serde(rename = "d")]
    Date(i64),
    #[serde(rename = "s")]
    Text(String),
    #[serde(rename = "r")]
    Number(i64),
    #[serde(rename = "n")]
    Null,
}

impl Key {
    fn from_bson(value: &Bson) -> Self {
        match value {
            Bson::DateTime(date) => Self::Date(date.timestamp_millis()),
            Bson::String(text) => Self::Text(text.clone()),
            Bson::Int32(number) => Self::Number(i64::from(*number)),
            Bson::Int64(number) => Self::Number(*number),
            Bson::Null => Self::Null,
            other => Self::Text(other.to_string()),
        }
    }

    fn to_bson(&self) -> Bson {
        match self {
            Self::Date(millis) => Bson::DateTime(mongodb::bson::DateTime::from_millis(*millis)),
            Self::Text(text) => Bson::String(text.clone()),
            Self::Number(number) => Bson::Int64(*number),
            Self::Null => Bson::Null,
        }
    }
}

/// The position after which the next page starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort field the cursor was made for.
    #[serde(rename = "f")]
    field: String,
    #[serde(rename = "o")]
    order: Order,
    #[serde(rename = "k")]
    key: Key,
    #[serde(rename = "i")]
    id: String,
}

impl Cursor {
    /// The cursor after `last` (a document of the page) in `sorting`.
    pub fn after(sorting: Sorting, last: &Document) -> Self {
        Self {
            field: sorting.field.to_owned(),
            order: sorting.order,
            key: Key::from_bson(&crate::store::field(last, sorting.field)),
            id: last.get_str("_id").unwrap_or_default().to_owned(),
        }
    }

    /// The opaque text given to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a cursor a client sent back; it must belong to the same `sorting`.
    ///
    /// # Errors
    /// 422 `invalid` for a cursor we did not make or made for another order.
    pub fn decode(text: &str, sorting: Sorting) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::invalid("invalid cursor: pass the next_cursor of a previous page unchanged")
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let cursor: Self = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.field != sorting.field || cursor.order != sorting.order {
            return Err(ApiError::invalid(format!(
                "the cursor was made for sort={} order={}; keep the same sort and order across pages",
                cursor.field,
                match cursor.order {
                    Order::Asc => "asc",
                    Order::Desc => "desc",
                }
            )));
        }
        Ok(cursor)
    }

    /// The filter of the documents strictly after this cursor (MongoDB sorts `null` first).
    pub fn filter(&self) -> Document {
        let field = self.field.as_str();
        let key = self.key.to_bson();
        let id = self.id.as_str();
        match (self.order, &self.key) {
            (Order::Asc, Key::Null) => doc! { "$or": [
                { field: Bson::Null, "_id": { "$gt": id } },
                { field: { "$ne": Bson::Null } },
            ] },
            (Order::Asc, _) => doc! { "$or": [
                { field: { "$gt": key.clone() } },
                { field: key, "_id": { "$gt": id } },
            ] },
            (Order::Desc, Key::Null) => doc! { field: Bson::Null, "_id": { "$lt": id } },
            (Order::Desc, _) => doc! { "$or": [
                { field: { "$lt": key.clone() } },
                { field: key, "_id": { "$lt": id } },
                { field: Bson::Null },
            ] },
        }
    }
}

/// A validated page size.
///
/// # Errors
/// 422 for 0 or more than [`MAX_LIMIT`].
pub fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_LIMIT} (got {limit})"
        ))),
    }
}

/// Reads one page: `filter` (and the cursor's position) in `sorting`, `limit` items, and the
/// cursor of the next page if there is one.
///
/// # Errors
/// An invalid cursor (422), MongoDB unreachable (503).
pub async fn page<T: serde::de::DeserializeOwned>(
    store: &crate::store::ReadStore,
    collection: fn(u64) -> String,
    filter: Document,
    sorting: Sorting,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<T>, ApiError> {
    let filter = match cursor {
        None => filter,
        Some(text) => {
            let cursor = Cursor::decode(text, sorting)?;
            doc! { "$and": [filter, cursor.filter()] }
        }
    };
    let mut documents = store
        .find(collection, filter, sorting.sort(), i64::from(limit) + 1)
        .await?;
    let more = documents.len() > limit as usize;
    documents.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            documents
                .last()
                .map(|last| Cursor::after(sorting, last).encode())
        })
        .flatten();
    let items = documents
        .into_iter()
        .map(crate::store::decode)
        .collect::<Result<_, _>>()?;
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BY_CREATED: Sorting = Sorting {
        field: "created_at",
        order: Order::Desc,
    };

    #[test]
    fn cursors_round_trip_and_belong_to_one_order() {
        let last = doc! { "_id": "b", "created_at": mongodb::bson::DateTime::from_millis(42) };
        let cursor = Cursor::after(BY_CREATED, &last);
        let text = cursor.encode();
        assert_eq!(Cursor::decode(&text, BY_CREATED).expect("decodes"), cursor);
        let other = Sorting {
            field: "due_date",
            order: Order::Asc,
        };
        assert!(Cursor::decode(&text, other).is_err());
        assert!(Cursor::decode("not a cursor!", BY_CREATED).is_err());
        let by_priority = Sorting {
            field: "priority_rank",
            order: Order::Desc,
        };
        let ranked = Cursor::after(by_priority, &doc! { "_id": "c", "priority_rank": 3 });
        let back = Cursor::decode(&ranked.encode(), by_priority).expect("decodes");
        assert_eq!(back.key.to_bson(), Bson::Int64(3));
        assert!(
            Cursor::decode("e30", BY_CREATED).is_err(),
            "{{}} is not a cursor"
        );
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None).expect("default"), DEFAULT_LIMIT);
        assert_eq!(limit(Some(100)).expect("max"), 100);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
    }
}
