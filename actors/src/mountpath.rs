//! Mountpaths: one actor per mountpath directory of a target.
