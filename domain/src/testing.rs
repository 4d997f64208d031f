//! Test helpers shared by the aggregates' tests (compiled only for tests).

use std::fmt::Debug;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// A fixed id, readable in failures: `00000000-0000-0000-0000-0000000000NN`.
pub(crate) const fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// Runs `commands` one by one through `handle` on a running aggregate, keeping the events of
/// the accepted ones, and checks the properties every aggregate must have:
/// - a refused command leaves the state unchanged;
/// - `Default` + `apply` of all accepted events equals the running aggregate;
/// - the events and the state survive a JSON round trip (what the event store and snapshots do).
///
/// Returns the final state and the accepted events.
pub(crate) fn check_replay<A>(
    services: &A::Services,
    commands: Vec<A::Command>,
) -> (A, Vec<A::Event>)
where
    A: Aggregate + Clone + PartialEq + Debug + Serialize + DeserializeOwned,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let mut running = A::default();
        let mut accepted = Vec::new();
        for command in commands {
            let before = running.clone();
            let sink = EventSink::<A>::default();
            match running.handle(command, services, &sink).await {
                Ok(()) => accepted.extend(sink.collect().await),
                Err(_) => {
                    assert!(sink.collect().await.is_empty(), "a refusal wrote events");
                    assert_eq!(running, before, "a refusal changed the state");
                }
            }
        }

        let mut replayed = A::default();
        for event in accepted.clone() {
            let json = serde_json::to_string(&event).expect("event serializes");
            let decoded: A::Event = serde_json::from_str(&json).expect("event deserializes");
            assert_eq!(decoded, event, "event JSON round trip");
            replayed.apply(decoded);
        }
        assert_eq!(replayed, running, "replaying the accepted events");

        let json = serde_json::to_string(&running).expect("state serializes");
        let decoded: A = serde_json::from_str(&json).expect("state deserializes");
        assert_eq!(decoded, running, "state JSON round trip");

        (running, accepted)
    })
}
