//! A decoder of Server-Sent Events, fed with the bytes of a response body as they arrive.

/// One event: its name (`message` when unnamed) and its data lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field.
    pub event: String,
    /// The `data:` fields.
    pub data: String,
}

/// Turns body bytes into events; keeps what is incomplete for the next push.
#[derive(Debug, Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl SseDecoder {
    /// Decodes the events completed by `bytes`.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(SseEvent {
                        event: self.event.take().unwrap_or_else(|| "message".to_owned()),
                        data,
                    });
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = Some(value.to_owned()),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: name.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn events_split_anywhere_are_decoded_once_complete() {
        let body = b": keep-alive\n\nevent: delta\ndata: {\"text\":\"Yo\"}\n\nevent: done\r\ndata: a\r\ndata: b\r\n\r\n";
        for split in 0..body.len() {
            let mut decoder = SseDecoder::default();
            let mut events = decoder.push(&body[..split]);
            events.extend(decoder.push(&body[split..]));
            assert_eq!(
                events,
                [event("delta", "{\"text\":\"Yo\"}"), event("done", "a\nb")],
                "split at {split}"
            );
        }
    }

    #[test]
    fn an_unnamed_event_is_a_message_and_an_unfinished_one_waits() {
        let mut decoder = SseDecoder::default();
        assert_eq!(
            decoder.push(b"data: x\n\nevent: delta\ndata: y\n"),
            [event("message", "x")]
        );
        assert_eq!(decoder.push(b"\n"), [event("delta", "y")]);
    }
}
