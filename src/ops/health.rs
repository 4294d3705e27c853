//! `/healthz` and `/readyz`: whether to restart the process, and whether to send it
//! queries.
//!
//! * **Live** (`/healthz`): the process answers HTTP, so its runtime is not wedged.
//!   A broker outage does not make it unhealthy: restarting would throw away every
//!   table and restore them again from a broker that is not there.
//! * **Ready** (`/readyz`): every declared source has restored (reached the high
//!   watermark it saw at start), its consumer runs, and Kafka answers it. During a
//!   broker outage the sources keep answering SQL from their last state, but they
//!   no longer follow their topics, so the process is not ready: a load balancer
//!   that must send queries somewhere can use `/healthz` instead. A server started
//!   while Kafka is down is up (it answers SQL and these endpoints) but not ready
//!   until its sources could start. A source whose consumer stopped on an error
//!   (its memory limit, say) never catches up again, so it keeps the process not
//!   ready.

use crate::sql::{Engine, SourceInfo};

/// Where the process is in its life, as `/readyz` reports it before the sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Running the start-up SQL: not every source is declared yet.
    Starting,
    /// Serving: ready when every source is.
    #[default]
    Serving,
    /// Shutting down: running statements finish, no new ones should come.
    ShuttingDown,
}

/// Why a source is not ready, for the `/readyz` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// The source's name.
    pub name: String,
    /// What it is doing instead.
    pub reason: String,
}

/// Every source that is not ready; empty when the process is ready.
pub fn not_ready(engine: &Engine) -> Vec<NotReady> {
    engine.sources().iter().filter_map(reason).collect()
}

fn reason(source: &SourceInfo) -> Option<NotReady> {
    let stats = &source.stats;
    let reason = if stats.kafka_unreachable {
        let error = stats.last_error.as_deref().unwrap_or("no broker answers");
        if stats.running {
            format!("Kafka unreachable, serving the last state: {error}")
        } else {
            error.to_string()
        }
    } else if !stats.running {
        match &stats.last_error {
            Some(error) => format!("stopped: {error}"),
            None => "stopped".to_string(),
        }
    } else if !stats.ready {
        let mut reason = format!(
            "restoring: {}/{} offsets",
            stats.offsets_done, stats.offsets_total
        );
        if let Some(error) = &stats.last_error {
            reason.push_str(&format!(" (last error: {error})"));
        }
        reason
    } else {
        return None;
    };
    Some(NotReady {
        name: source.name.clone(),
        reason,
    })
}

/// The `/readyz` body: `ready`, or one line per source that is not.
pub fn readiness_text(not_ready: &[NotReady]) -> String {
    if not_ready.is_empty() {
        return "ready\n".to_string();
    }
    not_ready
        .iter()
        .map(|n| format!("{}: {}\n", n.name, n.reason))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_each_source_that_is_not_ready() {
        assert_eq!(readiness_text(&[]), "ready\n");
        let text = readiness_text(&[
            NotReady {
                name: "users".into(),
                reason: "restoring: 3/10 offsets".into(),
            },
            NotReady {
                name: "big".into(),
                reason: "stopped: memory limit".into(),
            },
        ]);
        assert_eq!(
            text,
            "users: restoring: 3/10 offsets\nbig: stopped: memory limit\n"
        );
    }
}
