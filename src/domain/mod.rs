//! The pure core: domain types, parsers and policies.
//!
//! Nothing in here does IO, spawns tasks or touches a database; functions that
//! depend on the clock take `now` as an argument. The module compiles for the
//! browser too (the UI formats bytes, statuses and relative times with it).

pub mod accounting;
pub mod bytes;
pub mod ccd;
pub mod client_change;
pub mod client_config;
pub mod cluster;
pub mod command;
pub mod history;
pub mod host;
pub mod ids;
pub mod ingest;
pub mod keys;
pub mod listing;
pub mod names;
pub mod net;
pub mod openvpn;
pub mod policy;
pub mod secret;
pub mod sessions;
pub mod status;
pub mod throttle;
pub mod time;
pub mod users;
pub mod wg_config;
pub mod wg_dump;

pub use bytes::ByteCount;
pub use command::RemoteCommand;
pub use host::{HostKeyPin, Protocol, SshKeySource};
pub use ids::{ClientId, ServerId, UserId};
pub use keys::PublicKey;
pub use names::{CommandPrefix, InterfaceName, RemotePath, ServerName, SshUser, Username};
pub use net::{HostAddress, IpNetwork};
pub use secret::Secret;
pub use status::ConnectionStatus;
