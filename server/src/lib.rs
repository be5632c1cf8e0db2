//! scry management server: agents, actions, events, users, audit.

pub mod api;
