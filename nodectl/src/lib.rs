//! nodectl.
