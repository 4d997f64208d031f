//! A minimal client of server-sent events (`GET /stream`), over reqwest, for the tests and the
//! benchmark: it reads the response body chunk by chunk and splits it into events.

use std::time::Duration;

/// One event: its `event:` name (`message` if none), `id:` and `data:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field.
    pub event: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

impl Event {
    /// `data` as JSON (`Null` if it is not).
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null)
    }
}

/// An open event stream.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
    ended: bool,
}

impl EventStream {
    /// `GET url` with the bearer `token` and, if given, `Last-Event-ID`; the HTTP status and,
    /// for a 200, the stream.
    ///
    /// # Errors
    /// The request failed.
    pub async fn open(
        http: &reqwest::Client,
        url: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> reqwest::Result<(u16, Option<Self>)> {
        let mut request = http
            .get(url)
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let stream = (status == 200).then(|| Self {
            response,
            buffer: String::new(),
            ended: false,
        });
        Ok((status, stream))
    }

    /// The next event (comments are skipped), `None` when the stream ended or nothing came
    /// within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.take_event() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None) | Err(_)) => self.ended = true,
                Err(_elapsed) => return None,
            }
        }
    }

    /// The next event for which `wanted` holds, skipping others; `None` as [`Self::next`].
    pub async fn next_where(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await?;
            if wanted(&event) {
                return Some(event);
            }
        }
    }

    /// Whether the server ended the stream (seen by the last read).
    #[must_use]
    pub const fn ended(&self) -> bool {
        self.ended
    }

    fn take_event(&mut self) -> Option<Event> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut event = Event {
                event: "message".to_owned(),
                id: None,
                data: String::new(),
            };
            let mut fields = 0;
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => event.event = value.to_owned(),
                    "id" => event.id = Some(value.to_owned()),
                    "data" => {
                        if !event.data.is_empty() {
                            event.data.push('\n');
                        }
                        event.data.push_str(value);
                    }
                    _ => continue, // a comment (`:`) or a field we do not use
                }
                fields += 1;
            }
            if fields > 0 {
                return Some(event);
            }
        }
    }
}
