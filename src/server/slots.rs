//! Connection slots: how many clients may be connected, logging in, and from one
//! address, so that whoever can reach the port cannot take the server from the
//! users who have a login.
//!
//! Three counts, each with its own job:
//! * **sessions** (`max_connections`): taken when the startup packet arrives (as
//!   PostgreSQL checks it) and kept until the connection closes.
//! * **logins**: taken at accept and given back once the client has logged in. A
//!   socket that never sends a startup packet holds one of these, never a session's,
//!   and only until the authentication timeout closes it; so silent sockets cannot
//!   push out logged-in users, and delay new logins by one timeout at most.
//! * **per address**: every connection from one IP address counts, logged in or
//!   not, so one host cannot take every slot alone. Loopback counts like any
//!   address: a proxy, tunnel or sidecar on the server's host makes remote clients
//!   look local, and an exemption would exempt them too.
//!
//! A connection over a limit is not dropped silently: it is served up to its
//! startup packet, answered FATAL 53300 in PostgreSQL's words, and closed, so
//! clients show why. Its cancel requests are still served (cancelling is how a user
//! frees a server that is full). Those answers are bounded too ([`REFUSING_AT_ONCE`]);
//! past that, a connection is closed at once.
//!
//! Tokio semaphores for the pools (non-blocking `try_acquire`), a `parking_lot`
//! mutex for the per-address map: a short critical section with no `.await`.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections over a limit being answered 53300 at once; more are closed at once.
const REFUSING_AT_ONCE: usize = 64;

/// Why a connection is refused (SQLSTATE 53300, too_many_connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every session slot (or login slot) is taken.
    TooManyClients,
    /// The client's address has its share.
    TooManyFromAddress(IpAddr),
}

impl Refusal {
    /// The message the client sees; PostgreSQL's for the server-wide limit.
    pub(crate) fn message(&self) -> String {
        match self {
            Refusal::TooManyClients => "sorry, too many clients already".into(),
            Refusal::TooManyFromAddress(ip) => format!("too many connections from address {ip}"),
        }
    }
}

/// The server's slots; shared by the accept loop and every connection.
pub(crate) struct Slots {
    sessions: Option<Arc<Semaphore>>,
    logins: Option<Arc<Semaphore>>,
    refusing: Arc<Semaphore>,
    per_address: usize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

impl Slots {
    /// `max_connections` sessions (and as many logins), `per_address` connections
    /// from one address; 0 means no limit for either.
    pub(crate) fn new(max_connections: usize, per_address: usize) -> Arc<Self> {
        let pool = |size: usize| (size > 0).then(|| Arc::new(Semaphore::new(size)));
        Arc::new(Self {
            sessions: pool(max_connections),
            logins: pool(max_connections),
            refusing: Arc::new(Semaphore::new(REFUSING_AT_ONCE)),
            per_address,
            by_address: Mutex::new(HashMap::new()),
        })
    }

    /// What a new connection from `ip` may do; `None`: close it at once.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let refusal = match self.count(ip) {
            Err(refusal) => refusal,
            Ok(address) => match self
                .logins
                .as_ref()
                .map(|l| Arc::clone(l).try_acquire_owned())
            {
                None => return Some(Ticket::admitted(self, address, None)),
                Some(Ok(login)) => return Some(Ticket::admitted(self, address, Some(login))),
                Some(Err(_)) => Refusal::TooManyClients,
            },
        };
        let permit = Arc::clone(&self.refusing).try_acquire_owned().ok()?;
        Some(Ticket {
            refusal: Some(refusal),
            held: vec![permit],
            login: None,
            _address: None,
            slots: Arc::clone(self),
        })
    }

    /// Counts a connection from `ip`, unless its address has its share.
    fn count(self: &Arc<Self>, ip: IpAddr) -> Result<Option<AddressCount>, Refusal> {
        if self.per_address == 0 {
            return Ok(None);
        }
        let mut by_address = self.by_address.lock();
        let count = by_address.entry(ip).or_insert(0);
        if *count >= self.per_address {
            return Err(Refusal::TooManyFromAddress(ip));
        }
        *count += 1;
        Ok(Some(AddressCount {
            ip,
            slots: Arc::clone(self),
        }))
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.by_address.lock().len()
    }
}

/// One address's count of a connection, given back on drop.
struct AddressCount {
    ip: IpAddr,
    slots: Arc<Slots>,
}

impl Drop for AddressCount {
    fn drop(&mut self) {
        let mut by_address = self.slots.by_address.lock();
        if let Some(count) = by_address.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                by_address.remove(&self.ip);
            }
        }
    }
}

/// A connection's slots, given back when it is dropped (when the connection ends).
pub(crate) struct Ticket {
    refusal: Option<Refusal>,
    /// Session and refusal permits, kept to the end.
    held: Vec<OwnedSemaphorePermit>,
    login: Option<OwnedSemaphorePermit>,
    _address: Option<AddressCount>,
    slots: Arc<Slots>,
}

impl Ticket {
    fn admitted(
        slots: &Arc<Slots>,
        address: Option<AddressCount>,
        login: Option<OwnedSemaphorePermit>,
    ) -> Self {
        Self {
            refusal: None,
            held: Vec::new(),
            login,
            _address: address,
            slots: Arc::clone(slots),
        }
    }

    /// The startup packet arrived: takes a session slot, or says why there is none.
    pub(crate) fn start_session(&mut self) -> Result<(), Refusal> {
        if let Some(refusal) = self.refusal {
            return Err(refusal);
        }
        if let Some(sessions) = &self.slots.sessions {
            let permit = Arc::clone(sessions)
                .try_acquire_owned()
                .map_err(|_| Refusal::TooManyClients)?;
            self.held.push(permit);
        }
        Ok(())
    }

    /// The client has logged in: its login slot goes back.
    pub(crate) fn logged_in(&mut self) {
        self.login = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn sessions_are_limited_at_startup_and_come_back_on_drop() {
        let slots = Slots::new(2, 0);
        let mut first = slots.admit(CLIENT).unwrap();
        let mut second = slots.admit(CLIENT).unwrap();
        first.start_session().unwrap();
        second.start_session().unwrap();
        first.logged_in();
        second.logged_in();
        let mut third = slots.admit(CLIENT).expect("a login slot is free");
        assert_eq!(third.start_session(), Err(Refusal::TooManyClients));
        drop(third);
        drop(first);
        let mut fourth = slots.admit(CLIENT).unwrap();
        assert_eq!(fourth.start_session(), Ok(()));
    }

    #[test]
    fn connections_that_never_log_in_hold_login_slots_not_sessions() {
        let slots = Slots::new(2, 0);
        let silent: Vec<_> = (0..2).map(|_| slots.admit(CLIENT).unwrap()).collect();
        let mut refused = slots.admit(CLIENT).expect("answered, not dropped");
        assert_eq!(refused.start_session(), Err(Refusal::TooManyClients));
        drop(silent);
        let mut client = slots.admit(CLIENT).unwrap();
        assert_eq!(client.start_session(), Ok(()));
    }

    #[test]
    fn one_address_gets_its_share_and_others_get_theirs() {
        let slots = Slots::new(8, 2);
        let held: Vec<_> = (0..2).map(|_| slots.admit(CLIENT).unwrap()).collect();
        let mut over = slots.admit(CLIENT).unwrap();
        assert_eq!(
            over.start_session(),
            Err(Refusal::TooManyFromAddress(CLIENT))
        );
        let mut other = slots.admit(OTHER).unwrap();
        assert_eq!(other.start_session(), Ok(()));
        drop((held, over, other));
        assert_eq!(slots.addresses(), 0, "counts go back to nothing");
    }

    #[test]
    fn refusals_are_bounded_too() {
        let slots = Slots::new(1, 0);
        let _holder = slots.admit(CLIENT).unwrap();
        let refused: Vec<_> = (0..REFUSING_AT_ONCE)
            .map(|_| slots.admit(CLIENT).expect("answered"))
            .collect();
        assert!(slots.admit(CLIENT).is_none(), "closed at once");
        drop(refused);
        assert!(slots.admit(CLIENT).is_some());
    }

    #[test]
    fn concurrent_admissions_never_exceed_the_limits() {
        let slots = Slots::new(0, 3);
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (slots, peak, live) =
                    (Arc::clone(&slots), Arc::clone(&peak), Arc::clone(&live));
                std::thread::spawn(move || {
                    use std::sync::atomic::Ordering::SeqCst;
                    for _ in 0..2_000 {
                        if let Some(mut ticket) = slots.admit(CLIENT) {
                            if ticket.start_session().is_ok() {
                                let now = live.fetch_add(1, SeqCst) + 1;
                                peak.fetch_max(now, SeqCst);
                                live.fetch_sub(1, SeqCst);
                            }
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 3);
        assert_eq!(slots.addresses(), 0);
    }
}
