//! The `servers` list: `id,host:port;id,host:port;…`.

use super::exit::StartProblem;
use std::collections::HashSet;

/// One entry of a `servers` list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerNode {
    /// The node id.
    pub node_id: i32,
    /// The host (IPv6 brackets removed).
    pub host: String,
    /// The port (replicate port in servers.properties, service port in client.properties).
    pub port: i32,
}

/// Java's `String.split` on one char: trailing empty parts dropped.
pub(crate) fn split_java(s: &str, sep: char) -> Vec<&str> {
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    parts
}

/// Parses a `servers` value with the reference's rules: entries separated by `;`
/// (blank entries skipped), each `id,host:port` where the port follows the last `:`
/// and the host may be in `[...]`; ids and ports are Java ints (trimmed). An empty
/// string is an empty list.
pub fn parse_servers(s: &str) -> Result<Vec<ServerNode>, StartProblem> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let entries = split_java(s, ';');
    if entries.is_empty() {
        return Err(StartProblem::BadServers(format!("'{s}' lists no server")));
    }
    let mut out = Vec::new();
    for entry in entries {
        if entry.trim().is_empty() {
            continue;
        }
        let parts = split_java(entry, ',');
        if parts.len() != 2 {
            return Err(StartProblem::BadServers(format!(
                "'{entry}' is not id,host:port"
            )));
        }
        let node_id: i32 = parts[0]
            .trim()
            .parse()
            .map_err(|_| StartProblem::BadServers(format!("id '{}' is not a number", parts[0])))?;
        let hp = parts[1];
        let colon = match hp.rfind(':') {
            Some(x) if x + 1 < hp.len() => x,
            _ => {
                return Err(StartProblem::BadServers(format!("'{hp}' is not host:port")));
            }
        };
        let mut host = hp[..colon].trim();
        if host.starts_with('[') && host.ends_with(']') && host.len() >= 2 {
            host = &host[1..host.len() - 1];
        }
        let port: i32 = hp[colon + 1..]
            .trim()
            .parse()
            .map_err(|_| StartProblem::BadServers(format!("port in '{hp}' is not a number")))?;
        out.push(ServerNode {
            node_id,
            host: host.to_string(),
            port,
        });
    }
    Ok(out)
}

/// Checks a parsed list the way the Raft server does: unique ids, unique host:port.
pub fn check_unique(nodes: &[ServerNode]) -> Result<(), StartProblem> {
    let mut ids = HashSet::new();
    let mut hosts = HashSet::new();
    for n in nodes {
        if !ids.insert(n.node_id) {
            return Err(StartProblem::DuplicateServerId(n.node_id));
        }
        if !hosts.insert((n.host.as_str(), n.port)) {
            return Err(StartProblem::DuplicateServerHost(format!(
                "{}:{}",
                n.host, n.port
            )));
        }
    }
    Ok(())
}

/// Formats nodes as the reference writes them: `id,host:port;` for each, in the order
/// given (each entry ends with `;`).
pub fn format_servers(nodes: &[ServerNode]) -> String {
    let mut s = String::new();
    for n in nodes {
        s.push_str(&format!("{},{}:{};", n.node_id, n.host, n.port));
    }
    s
}

/// Parses a member or observer list (`1,2,3`) and checks each id is in `all_ids`, once.
pub fn parse_member_ids(
    text: &str,
    group_id: i32,
    all_ids: &HashSet<i32>,
) -> Result<Vec<i32>, StartProblem> {
    let mut out: Vec<i32> = Vec::new();
    for part in split_java(text, ',') {
        let id: i32 = part.trim().parse().map_err(|_| StartProblem::BadMemberId {
            group_id,
            text: part.to_string(),
        })?;
        if !all_ids.contains(&id) {
            return Err(StartProblem::MemberNotInServers {
                group_id,
                node_id: id,
            });
        }
        if out.contains(&id) {
            return Err(StartProblem::DuplicateMember {
                group_id,
                node_id: id,
            });
        }
        out.push(id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i32, host: &str, port: i32) -> ServerNode {
        ServerNode {
            node_id: id,
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_the_reference_forms() {
        assert_eq!(
            parse_servers("1,127.0.0.1:9331").unwrap(),
            vec![node(1, "127.0.0.1", 9331)]
        );
        assert_eq!(
            parse_servers(" 1, h1 : 4001 ;2,[::1]:4002;; 3,::1:4003;").unwrap(),
            vec![
                node(1, "h1", 4001),
                node(2, "::1", 4002),
                node(3, "::1", 4003)
            ]
        );
        assert!(parse_servers("").unwrap().is_empty());
        assert!(parse_servers("   ").unwrap().is_empty());
        for bad in [";;", "1", "1,h", "1,h:", "x,h:1", "1,h:p", "1,h:1,2"] {
            assert!(
                matches!(parse_servers(bad), Err(StartProblem::BadServers(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn uniqueness_and_format() {
        let l = parse_servers("1,a:1;2,b:1").unwrap();
        check_unique(&l).unwrap();
        assert_eq!(format_servers(&l), "1,a:1;2,b:1;");
        assert_eq!(parse_servers(&format_servers(&l)).unwrap(), l);
        assert_eq!(
            check_unique(&parse_servers("1,a:1;1,b:1").unwrap()),
            Err(StartProblem::DuplicateServerId(1))
        );
        assert_eq!(
            check_unique(&parse_servers("1,a:1;2,a:1").unwrap()),
            Err(StartProblem::DuplicateServerHost("a:1".into()))
        );
    }

    #[test]
    fn member_lists() {
        let ids: HashSet<i32> = [1, 2, 3].into_iter().collect();
        assert_eq!(parse_member_ids("1, 2 ,3", 0, &ids).unwrap(), vec![1, 2, 3]);
        assert!(parse_member_ids(",", 0, &ids).unwrap().is_empty());
        assert_eq!(
            parse_member_ids("1,4", 7, &ids),
            Err(StartProblem::MemberNotInServers {
                group_id: 7,
                node_id: 4
            })
        );
        assert_eq!(
            parse_member_ids("1,1", 7, &ids),
            Err(StartProblem::DuplicateMember {
                group_id: 7,
                node_id: 1
            })
        );
        assert!(matches!(
            parse_member_ids("1,,2", 7, &ids),
            Err(StartProblem::BadMemberId { .. })
        ));
    }
}
