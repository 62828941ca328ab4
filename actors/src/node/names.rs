//! Names of a node's supervised actors, `<node-id>/<child>`, registered in ractor's registry so
//! that a message can reach a child whatever its current incarnation (a restarted child has a
//! new `ActorRef`, the same name), and so that several nodes in one process do not collide.

use ractor::{ActorRef, registry};

use crate::types::smap::NodeId;

pub fn name(id: &NodeId, child: &str) -> String {
    format!("{id}/{child}")
}

pub fn node(id: &NodeId) -> String {
    name(id, "node")
}
pub fn meta(id: &NodeId) -> String {
    name(id, "meta")
}
pub fn primary(id: &NodeId) -> String {
    name(id, "primary")
}
pub fn keepalive(id: &NodeId) -> String {
    name(id, "keepalive")
}
pub fn stats(id: &NodeId) -> String {
    name(id, "stats")
}
pub fn rebalance(id: &NodeId) -> String {
    name(id, "rebalance")
}
pub fn server(id: &NodeId) -> String {
    name(id, "server")
}

/// The running actor registered as `name`, typed by its message. The caller knows which message
/// type each name carries (the names above are used with one type each).
pub fn lookup<M: ractor::Message>(name: &str) -> Option<ActorRef<M>> {
    registry::where_is(name).map(ActorRef::from)
}
