//! scry management server: agents, actions, events, users, audit. Built in the "three tiers" issue.
