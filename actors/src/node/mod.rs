//! The node: a NodeActor supervising listener, keepalive, stats, and per role the primary or the
//! mountpath and rebalance actors.
