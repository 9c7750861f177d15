//! What both backends share beyond SQL: turning rows into records (over
//! [`Columns`](super::rows::Columns)) and building the values a poll writes.

pub(crate) mod clients;
pub(crate) mod events;
pub(crate) mod listing;
pub(crate) mod ovpn_rows;
pub(crate) mod poll_rows;
pub(crate) mod reports;
pub(crate) mod servers;
pub(crate) mod users;
pub(crate) mod wg_rows;
