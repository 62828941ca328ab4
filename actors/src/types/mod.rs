//! Pure data that crosses a boundary (the wire, the disk, the CLI): IDs and flags, the cluster
//! map and its companions, objects, lifecycle requests and plans, and the status views shown by
//! `nodectl` and the console. No behaviour beyond small accessors.

pub mod auth;
pub mod checksum;
pub mod config;
pub mod lifecycle;
pub mod meta;
pub mod object;
pub mod smap;
pub mod status;
pub mod storage;

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix seconds now.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}
