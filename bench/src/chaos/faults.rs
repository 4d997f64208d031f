//! The faults, and the order they come in.

/// The faults, in the order they are injected (then again from the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    KillCommandApi,
    KillProjector,
    PauseBroker,
    KillQueryApi,
    RestartMongo,
    KillRedis,
    RestartBroker,
    LoseBrokerData,
}

pub(crate) const FAULTS: [Fault; 8] = [
    Fault::KillCommandApi,
    Fault::KillProjector,
    Fault::PauseBroker,
    Fault::KillQueryApi,
    Fault::RestartMongo,
    Fault::KillRedis,
    Fault::RestartBroker,
    Fault::LoseBrokerData,
];
