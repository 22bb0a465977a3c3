//! The publisher's reports on itself: the summary of what each node was told to announce
//! (shared with the admin API, the status objects and the metrics) and the failovers' durations.

use std::sync::Arc;

use tokio::time::Instant;

use super::{AssignmentPublisher, BOARD_EVERY, FAILOVER_FORGET};
use crate::announce::owners;
use crate::names::NodeName;

impl AssignmentPublisher {
    /// Publishes what every node was told, at most once a second: it walks every node's set.
    pub(super) fn publish_board(&mut self) {
        // A failover whose new owner never acknowledged (it died too, or the address moved
        // on) is not a failover that took this long.
        self.failing_over
            .retain(|_, (_, heard)| heard.elapsed() < FAILOVER_FORGET);
        if !self.board_stale || self.board_at.is_some_and(|t| t.elapsed() < BOARD_EVERY) {
            return;
        }
        self.board_stale = false;
        self.board_at = Some(Instant::now());
        let summary = match self.leading {
            None => crate::controller::announced::Announcements::default(),
            Some(_) => {
                let config = &self.view.config;
                crate::controller::announced::build(
                    self.nodes
                        .iter()
                        .map(|(node, s)| crate::controller::announced::NodeSent {
                            node,
                            fenced: s.fenced,
                            l2: s.addresses.sent(),
                            routes: &s.sent_routes,
                        }),
                    self.view.targets.values().map(|t| &**t),
                    |t| owners::announced_in_l2(config, t),
                )
            }
        };
        self.board.send_if_modified(|old| {
            let changed = **old != summary;
            if changed {
                *old = Arc::new(summary);
            }
            changed
        });
    }

    /// Ends the failovers whose new owner `node` acknowledged its address.
    pub(super) fn failovers_done(&mut self, node: &NodeName) {
        let Some(state) = self.nodes.get(node) else {
            return;
        };
        let metrics = &self.metrics;
        self.failing_over.retain(|addr, (to, heard)| {
            if to != node || !state.addresses.acknowledged(*addr) {
                return true;
            }
            metrics
                .failover_duration
                .observe(heard.elapsed().as_secs_f64());
            false
        });
    }
}
