//! Shoal console.
