//! The wire (DESIGN §4): frames and connections (`codec`), the messages with their typed replies
//! (`msg`), and the one connection pool with its one retry rule (`pool`), shared by the server,
//! the nodes and the client.

pub mod codec;
pub mod frame;
pub mod msg;
pub mod pool;

pub use codec::{CHUNK_SIZE, Conn, DEFAULT_MAX_FRAME, Envelope, PROTO_VERSION};
pub use msg::{Msg, Reply, Rpc};
pub use pool::Pool;
