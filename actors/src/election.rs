//! Primary election (DESIGN §9): on primary loss the electable proxy with the highest
//! `id_digest` (old primary excluded) asks for votes.
