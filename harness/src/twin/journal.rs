//! What each component did to a connection, so a client's observation lists the hops
//! its connection actually took. Server-side components cannot see the client's
//! trace, so they write to a journal keyed by the connection's client address (what
//! they see as the peer); the client merges those entries after the call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::provider::Hop;

/// One journal entry.
#[derive(Debug, Clone)]
struct Entry {
    hop: Hop,
    /// True when the component presented a certificate on this connection.
    presented: bool,
}

/// The mesh-wide journal.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<HashMap<SocketAddr, Vec<Entry>>>>);

impl Journal {
    /// Records what `component` did on the connection from `conn`.
    pub fn log(&self, conn: SocketAddr, component: &str, action: impl Into<String>) {
        self.push(conn, component, action.into(), false);
    }

    /// Records that `component` presented a certificate on the connection.
    pub fn presented(&self, conn: SocketAddr, component: &str, action: impl Into<String>) {
        self.push(conn, component, action.into(), true);
    }

    fn push(&self, conn: SocketAddr, component: &str, action: String, presented: bool) {
        if let Ok(mut map) = self.0.lock() {
            map.entry(conn).or_default().push(Entry {
                hop: Hop {
                    component: component.to_string(),
                    action,
                },
                presented,
            });
        }
    }

    fn take(&self, conn: SocketAddr) -> Vec<Entry> {
        self.0
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&conn))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
enum Item {
    Hop(Hop),
    Conn(SocketAddr),
    Absorbed(Vec<Entry>),
}

/// A client's trace: its own hops plus the connections it opened.
#[derive(Debug, Clone, Default)]
pub struct Trace(Arc<Mutex<Vec<Item>>>);

impl Trace {
    /// Records a hop of the client side.
    pub fn hop(&self, component: &str, action: impl Into<String>) {
        self.push(Item::Hop(Hop {
            component: component.to_string(),
            action: action.into(),
        }));
    }

    /// Records that a connection was opened from `local` (its server-side hops are
    /// merged by [`Trace::finish`]).
    pub fn connected(&self, local: SocketAddr) {
        self.push(Item::Conn(local));
    }

    /// Pulls a connection's server-side hops in now, as plain hops: used by a proxy
    /// that consumed that connection's handshake itself (so what was presented on it
    /// was presented to the proxy, not to the client at the end of the trace).
    /// `note`, when given, is placed right after the absorbed hops (the proxy's own
    /// account of the handshake).
    pub fn absorb(&self, local: SocketAddr, journal: &Journal, note: Option<Hop>) {
        let mut entries = journal.take(local);
        for e in &mut entries {
            e.presented = false;
        }
        if let Ok(mut items) = self.0.lock() {
            // In place of the connection: what was absorbed, then the connection again
            // for whatever its server side logs later (the app behind a proxy).
            let mut new = vec![Item::Absorbed(entries)];
            new.extend(note.map(Item::Hop));
            match items
                .iter()
                .position(|i| matches!(i, Item::Conn(a) if *a == local))
            {
                Some(at) => {
                    items.splice(at..at, new);
                }
                None => items.extend(new),
            }
        }
    }

    fn push(&self, item: Item) {
        if let Ok(mut items) = self.0.lock() {
            items.push(item);
        }
    }

    /// The hops in order, and the last component that presented a certificate to the
    /// client (not to a proxy on the way).
    pub fn finish(&self, journal: &Journal) -> (Vec<Hop>, Option<String>) {
        let items = self.0.lock().map(|i| i.clone()).unwrap_or_default();
        let mut hops = Vec::new();
        let mut presented_by = None;
        for item in items {
            let entries = match item {
                Item::Hop(h) => {
                    hops.push(h);
                    continue;
                }
                Item::Conn(addr) => journal.take(addr),
                Item::Absorbed(e) => e,
            };
            for e in entries {
                if e.presented {
                    presented_by = Some(e.hop.component.clone());
                }
                hops.push(e.hop);
            }
        }
        (hops, presented_by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_hops_are_merged_in_connection_order_and_absorbed_ones_do_not_present() {
        let journal = Journal::default();
        let trace = Trace::default();
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        trace.hop("client", "dial");
        trace.connected(a);
        journal.presented(a, "proxy-peer", "presented X");
        trace.absorb(a, &journal, None);
        journal.log(a, "app-behind-proxy-peer", "served");
        trace.connected(b);
        journal.presented(b, "server", "presented Y");
        let (hops, by) = trace.finish(&journal);
        let names: Vec<_> = hops.iter().map(|h| h.component.as_str()).collect();
        assert_eq!(
            names,
            ["client", "proxy-peer", "app-behind-proxy-peer", "server"]
        );
        assert_eq!(by.as_deref(), Some("server"));
    }
}
