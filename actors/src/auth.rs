//! Privileges (DESIGN §10). Lifecycle operations need admin rights; with auth disabled
//! everything is allowed.
