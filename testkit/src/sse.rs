//! Server-sent events for blocking test clients, parsed by the same crate
//! as the load generator's (`eventsource-stream`).

pub use eventsource_stream::Event;
use eventsource_stream::Eventsource;

/// The events in a body that arrives as `pieces` (decoded body bytes, as
/// they are read; a blocking iterator is fine: the events are pulled on
/// the caller's thread). Ends with the body, or with the first error.
pub fn events<I>(pieces: I) -> impl Iterator<Item = Result<Event, String>>
where
    I: Iterator<Item = std::io::Result<Vec<u8>>> + Unpin,
{
    futures_executor::block_on_stream(futures_util::stream::iter(pieces).eventsource())
        .map(|r| r.map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_across_pieces() {
        let pieces = vec![
            Ok(b"event: block\ndata: {\"height\":1}\n\n: keep-alive\n\nevent: bl".to_vec()),
            Ok(b"ock\ndata: {\"height\":2}\n\n".to_vec()),
        ];
        let evs: Vec<_> = super::events(pieces.into_iter())
            .map(|e| e.expect("event"))
            .collect();
        let got: Vec<(&str, &str)> = evs
            .iter()
            .map(|e| (e.event.as_str(), e.data.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![("block", "{\"height\":1}"), ("block", "{\"height\":2}")]
        );
    }
}
