//! [`Report`]: what the checks found, and its lines of output.

/// The checks and their counts.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) acknowledged: usize,
    pub(crate) missing_in_postgres: Vec<String>,
    pub(crate) missing_in_kafka: Vec<String>,
    pub(crate) behind_in_read_models: Vec<String>,
    pub(crate) kafka_messages: usize,
    pub(crate) replay_differences: Option<String>,
    pub(crate) ok: bool,
}

impl Report {
    pub(crate) fn lines(&self) -> Vec<String> {
        let sample = |list: &[String]| {
            if list.is_empty() {
                String::new()
            } else {
                format!(
                    " (e.g. {})",
                    list.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                )
            }
        };
        vec![
            format!(
                "aggregates with acknowledged commands: {}",
                self.acknowledged
            ),
            format!(
                "missing from PostgreSQL: {}{}",
                self.missing_in_postgres.len(),
                sample(&self.missing_in_postgres)
            ),
            format!(
                "missing from Kafka: {} (of {} messages read){}",
                self.missing_in_kafka.len(),
                self.kafka_messages,
                sample(&self.missing_in_kafka)
            ),
            format!(
                "behind in the read models: {}{}",
                self.behind_in_read_models.len(),
                sample(&self.behind_in_read_models)
            ),
            match &self.replay_differences {
                None => "read models vs a fresh replay: 0 differences".to_owned(),
                Some(text) => format!("read models vs a fresh replay: DIFFERENT\n{text}"),
            },
        ]
    }
}
