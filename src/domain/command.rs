//! Commands run on VPN hosts.
//!
//! SSH hands a command to the remote login shell as one string, so each word
//! is built from validated parts and then single-quoted. Nothing an admin types
//! is ever pasted into the line as shell syntax.

use super::names::{CommandPrefix, InterfaceName};
use std::fmt;

/// A program and its arguments, to run on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCommand {
    argv: Vec<String>,
}

impl RemoteCommand {
    /// `[prefix…] wg show <interface> dump`
    pub fn wg_dump(prefix: &CommandPrefix, interface: &InterfaceName) -> Self {
        let mut argv: Vec<String> = prefix.parts().to_vec();
        argv.extend(["wg", "show", interface.as_str(), "dump"].map(str::to_owned));
        Self { argv }
    }

    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The line to send over SSH: every word single-quoted for a POSIX shell.
    pub fn to_shell_line(&self) -> String {
        self.argv.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
    }
}

impl fmt::Display for RemoteCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}

/// Quotes one word for a POSIX shell: `'…'`, with `'` written as `'\''`.
pub fn shell_quote(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dump_command_quotes_every_word() {
        let prefix = CommandPrefix::parse("docker exec amnezia-awg").unwrap();
        let iface = InterfaceName::parse("wg0").unwrap();
        let cmd = RemoteCommand::wg_dump(&prefix, &iface);
        assert_eq!(cmd.to_shell_line(), "'docker' 'exec' 'amnezia-awg' 'wg' 'show' 'wg0' 'dump'");
        assert_eq!(cmd.to_string(), "docker exec amnezia-awg wg show wg0 dump");
        let plain = RemoteCommand::wg_dump(&CommandPrefix::empty(), &iface);
        assert_eq!(plain.argv(), ["wg", "show", "wg0", "dump"]);
    }

    #[test]
    fn quoting_neutralises_shell_syntax() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
        assert_eq!(shell_quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(shell_quote(""), "''");
    }
}
