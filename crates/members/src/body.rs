//! Answer bodies read with a size limit: a slow or hostile slurmrestd or Prometheus can
//! send an endless answer, and reading it whole would exhaust the service's memory.

use crate::error::{Error, Result};

/// Reads `response`'s body, refusing it once it grows past `limit` bytes (or announces
/// more). `timeout_s` names the call's time limit in a timeout error.
pub async fn read_capped(mut response: reqwest::Response, limit: usize, what: &str, timeout_s: u64) -> Result<Vec<u8>> {
    let too_large = || Error::Decode { what: what.into(), why: format!("the answer is larger than {limit} bytes") };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len().saturating_add(chunk.len()) > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(Error::Timeout { what: what.into(), seconds: timeout_s }),
            Err(e) => return Err(Error::Transport { what: what.into(), why: e.to_string() }),
        }
    }
}
