//! Keepalive (DESIGN §9): non-primary nodes heartbeat the primary; the primary marks silent
//! nodes offline.
