//! client.properties: the `servers` list of service ports the client tools connect to.

use super::servers::{check_unique, parse_servers, ServerNode};
use crate::props::{Properties, PropsError};
use std::path::Path;

/// The client tools' configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `servers`: `id,host:servicePort;…` as written.
    pub servers: String,
    /// The parsed list.
    pub nodes: Vec<ServerNode>,
}

/// Why client.properties cannot be used.
#[derive(Debug)]
pub enum ClientConfigError {
    /// The file cannot be read or parsed.
    Load(PropsError),
    /// No `servers` key, or one listing no server.
    NoServers,
    /// The list is malformed or has duplicates.
    BadServers(super::exit::StartProblem),
}

impl std::fmt::Display for ClientConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientConfigError::Load(e) => write!(f, "{e}"),
            ClientConfigError::NoServers => write!(
                f,
                "client.properties needs servers = id,host:servicePort;... (at least one)"
            ),
            ClientConfigError::BadServers(p) => write!(f, "client.properties: {p}"),
        }
    }
}

impl std::error::Error for ClientConfigError {}

impl ClientConfig {
    /// Reads client.properties.
    pub fn load(path: &Path) -> Result<ClientConfig, ClientConfigError> {
        let p = Properties::load(path).map_err(ClientConfigError::Load)?;
        Self::from_properties(&p)
    }

    /// Reads the `servers` key of parsed properties.
    pub fn from_properties(p: &Properties) -> Result<ClientConfig, ClientConfigError> {
        let servers = p.get("servers").ok_or(ClientConfigError::NoServers)?;
        let nodes = parse_servers(servers).map_err(ClientConfigError::BadServers)?;
        if nodes.is_empty() {
            return Err(ClientConfigError::NoServers);
        }
        check_unique(&nodes).map_err(ClientConfigError::BadServers)?;
        Ok(ClientConfig {
            servers: servers.to_string(),
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_servers() {
        let p = Properties::parse_str("servers = 1,127.0.0.1:9332;2,127.0.0.1:9432\n").unwrap();
        let c = ClientConfig::from_properties(&p).unwrap();
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.nodes[1].port, 9432);
        let none = Properties::parse_str("x=1\n").unwrap();
        assert!(matches!(
            ClientConfig::from_properties(&none),
            Err(ClientConfigError::NoServers)
        ));
        let empty = Properties::parse_str("servers=\n").unwrap();
        assert!(matches!(
            ClientConfig::from_properties(&empty),
            Err(ClientConfigError::NoServers)
        ));
        let bad = Properties::parse_str("servers=1,h\n").unwrap();
        assert!(matches!(
            ClientConfig::from_properties(&bad),
            Err(ClientConfigError::BadServers(_))
        ));
    }
}
