//! Files on disk: atomic metadata files (`files`), the object file format (`object`), a
//! mountpath and its counters (`mountpath`), and the local object store of a target (`local`).

pub mod files;
pub mod flush;
pub mod keys;
pub mod local;
pub mod mountpath;
pub mod mpset;
pub mod object;
pub mod walk;

pub use files::{load, persist, write_atomic};
pub use local::{Found, Install, LocalStore};
pub use mountpath::{Mountpath, MpState};
pub use mpset::{Identity, MountpathSet};
