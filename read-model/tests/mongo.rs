//! The read-model helpers against the real MongoDB-protocol server, and the driver features the
//! projector relies on (so a server that lacks one fails here, by name).

use chrono::{NaiveDate, Utc};
use futures::TryStreamExt as _;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;
use read_model::documents::{TaskView, status};
use read_model::{ActiveGeneration, Generation, ensure_indexes, names};
use test_support::{servers, unique_name};

async fn database() -> mongodb::Database {
    let client = read_model::mongo::connect(&servers().mongo)
        .await
        .expect("mongo client");
    let db = client.database(&unique_name("rm"));
    if let Err(error) = db.run_command(doc! { "ping": 1 }).await {
        test_support::server_down("MongoDB", servers().mongo.url.expose(), error);
    }
    db
}

fn task(id: &str) -> TaskView {
    TaskView {
        id: id.to_owned(),
        project_id: "p".into(),
        title: "T".into(),
        title_lower: "t".into(),
        description: String::new(),
        status: status::PENDING.into(),
        priority: "normal".to_owned(),
        priority_rank: Some(1),
        labels: Vec::new(),
        attachments: Vec::new(),
        assignee_id: None,
        created_by: "u".into(),
        due_date: NaiveDate::from_ymd_opt(2026, 1, 2),
        completed_on: None,
        created_at: read_model::time::truncate(Utc::now()),
        updated_at: read_model::time::truncate(Utc::now()),
        deleted: false,
        version: 1,
    }
}

#[tokio::test]
async fn documents_round_trip_with_bson_dates() {
    let db = database().await;
    let tasks = db.collection::<TaskView>("tasks_g1");
    let original = task("t1");
    tasks.insert_one(&original).await.expect("insert");
    let back = tasks
        .find_one(doc! { "_id": "t1" })
        .await
        .expect("find")
        .expect("found");
    assert_eq!(back, original);
    let raw = db
        .collection::<Document>("tasks_g1")
        .find_one(doc! { "_id": "t1" })
        .await
        .expect("find")
        .expect("found");
    assert!(
        matches!(raw.get("created_at"), Some(Bson::DateTime(_))),
        "{raw}"
    );
    assert_eq!(raw.get_str("due_date").expect("a string"), "2026-01-02");
    // Converting to a document (for $set) keeps the BSON date too.
    let as_document = read_model::codec::to_document(&original).expect("to_document");
    assert!(
        matches!(as_document.get("created_at"), Some(Bson::DateTime(_))),
        "{as_document}"
    );
    let back: TaskView = read_model::codec::from_document(as_document).expect("from_document");
    assert_eq!(back, original);
    db.drop().await.expect("drop");
}

#[tokio::test]
async fn generation_pointer_defaults_swaps_and_is_cached() {
    let db = database().await;
    assert_eq!(Generation::active(&db).await.expect("active"), 1);
    let cache = ActiveGeneration::new(db.clone());
    assert_eq!(cache.get().await.expect("get"), 1);
    let pointer = Generation::swap(&db, 2).await.expect("swap");
    assert_eq!(pointer.previous, Some(1));
    assert_eq!(Generation::active(&db).await.expect("active"), 2);
    tokio::time::sleep(read_model::CACHE_FOR).await;
    assert_eq!(cache.get().await.expect("get"), 2);
    db.drop().await.expect("drop");
}

#[tokio::test]
async fn indexes_are_created_and_unique_usernames_enforced() {
    let db = database().await;
    ensure_indexes(&db, 3).await.expect("indexes");
    ensure_indexes(&db, 3).await.expect("indexes again");
    let users = db.collection::<Document>(&names::users(3));
    users
        .insert_one(doc! { "_id": "a", "username": "ada" })
        .await
        .expect("insert");
    let duplicate = users
        .insert_one(doc! { "_id": "b", "username": "ada" })
        .await;
    assert!(duplicate.is_err(), "unique index on username");
    db.drop().await.expect("drop");
}

/// The update shapes the projector uses.
#[tokio::test]
async fn the_server_supports_the_update_shapes_the_projector_uses() {
    let db = database().await;
    let c = db.collection::<Document>("shapes");
    // Counter: upsert + $inc, returning the new value.
    for expected in 1..=2 {
        let after = c
            .find_one_and_update(doc! { "_id": "k" }, doc! { "$inc": { "recount": 1_i64 } })
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await
            .expect("find_one_and_update")
            .expect("a document");
        assert_eq!(after.get_i64("recount").expect("i64"), expected);
    }
    // Highest value wins: upsert + $max.
    for value in [5_i64, 3, 7] {
        c.update_one(doc! { "_id": "m" }, doc! { "$max": { "p": value } })
            .upsert(true)
            .await
            .expect("$max");
    }
    let m = c
        .find_one(doc! { "_id": "m" })
        .await
        .expect("find")
        .expect("m");
    assert_eq!(m.get_i64("p").expect("p"), 7);
    // Insert once: upsert + $setOnInsert.
    for text in ["first", "second"] {
        c.update_one(
            doc! { "_id": "n" },
            doc! { "$setOnInsert": { "text": text } },
        )
        .upsert(true)
        .await
        .expect("setOnInsert");
    }
    let n = c
        .find_one(doc! { "_id": "n" })
        .await
        .expect("find")
        .expect("n");
    assert_eq!(n.get_str("text").expect("text"), "first");
    // Guarded update "missing or older" ($not of $gte, as the projector writes it), update_many.
    c.insert_many([
        doc! { "_id": "t1", "p": "x" },
        doc! { "_id": "t2", "p": "x", "g": 5_i64 },
        doc! { "_id": "t3", "p": "y" },
    ])
    .await
    .expect("insert_many");
    let result = c
        .update_many(
            doc! { "p": "x", "g": { "$not": { "$gte": 3_i64 } } },
            doc! { "$set": { "name": "N", "g": 3_i64 } },
        )
        .await
        .expect("update_many");
    assert_eq!(result.matched_count, 1);
    // Unordered insert_many reports duplicates but inserts the rest.
    let outcome = c
        .insert_many([doc! { "_id": "t1" }, doc! { "_id": "t9" }])
        .ordered(false)
        .await;
    assert!(outcome.is_err());
    assert!(
        c.find_one(doc! { "_id": "t9" })
            .await
            .expect("find")
            .is_some()
    );
    // Replace with upsert, $in, projection, count, delete_many, list and drop collections.
    c.replace_one(doc! { "_id": "r" }, doc! { "_id": "r", "v": 1 })
        .upsert(true)
        .await
        .expect("replace upsert");
    let found: Vec<Document> = c
        .find(doc! { "_id": { "$in": ["t1", "t2", "r"] } })
        .projection(doc! { "p": 1 })
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("collect");
    assert_eq!(found.len(), 3);
    assert_eq!(
        c.count_documents(doc! { "p": "x" }).await.expect("count"),
        2
    );
    c.delete_many(doc! { "p": "y" }).await.expect("delete_many");
    assert!(
        db.list_collection_names()
            .await
            .expect("list")
            .contains(&"shapes".to_owned())
    );
    c.drop().await.expect("drop collection");
    // Dates compare in filters, strings compare in filters.
    let d = db.collection::<Document>("dates");
    d.insert_many([
        doc! { "_id": 1, "due": "2026-01-01", "s": "pending" },
        doc! { "_id": 2, "due": "2026-03-01", "s": "pending" },
        doc! { "_id": 3, "due": Bson::Null, "s": "pending" },
    ])
    .await
    .expect("insert");
    let overdue = d
        .count_documents(doc! { "due": { "$lt": "2026-02-01", "$ne": Bson::Null }, "s": { "$in": ["pending", "in_progress"] } })
        .await
        .expect("count");
    assert_eq!(overdue, 1);
    db.drop().await.expect("drop");
}

/// Dropping a collection leaves a collection whose name is a prefix of it alone.
#[tokio::test]
async fn dropping_a_collection_leaves_prefix_named_ones_alone() {
    let db = database().await;
    let short = db.collection::<Document>("users_g1");
    let long = db.collection::<Document>("users_g1000001");
    short.insert_one(doc! { "_id": "a" }).await.expect("insert");
    long.insert_one(doc! { "_id": "b" }).await.expect("insert");
    assert_eq!(short.count_documents(doc! {}).await.expect("count"), 1);
    long.drop().await.expect("drop");
    assert_eq!(
        short.count_documents(doc! {}).await.expect("count"),
        1,
        "dropping users_g1000001 removed users_g1's documents"
    );
    db.drop().await.expect("drop");
}
