//! The TTL checks done at the service boundary, before a request reaches the log
//! (`dtkv-server.md` §5.1, `wire-protocol.md` §6.5.10, §6.8.2). A failure is answered
//! with an empty body, `biz_code` INVALID_TTL and the reason as `msg` (the reference's
//! exact words).

use dt_client::kv::{LockPayload, MAX_TTL_MILLIS};

/// Checks a TTL (PUT_TEMP_NODE, MAKE_TEMP_DIR, UPDATE_TTL, UPDATE_LOCK_LEASE: `lock` =
/// false; `0 < ttl ≤ max`) or a TRY_LOCK (`lock` = true: `ttl` is the wait, `0 ≤ wait ≤
/// max`, the value carries a hold lease in its first 8 bytes with `0 < hold ≤ max` and
/// `hold ≥ wait`). `Err` holds the message for the response's `msg`.
///
/// ```
/// use dt_server::dtkv::check_ttl;
/// assert_eq!(check_ttl(0, b"", false).unwrap_err(), "ttl must be positive: 0");
/// assert_eq!(check_ttl(3_153_600_000_001, b"", false).unwrap_err(), "ttl too large: 3153600000001");
/// assert_eq!(check_ttl(10, b"short", true).unwrap_err(), "no hold ttl");
/// assert!(check_ttl(0, &[0, 0, 0, 0, 0, 0, 0x27, 0x10], true).is_ok());
/// ```
pub fn check_ttl(ttl: i64, value: &[u8], lock: bool) -> Result<(), String> {
    if ttl > MAX_TTL_MILLIS {
        return Err(format!("ttl too large: {ttl}"));
    }
    if !lock {
        if ttl <= 0 {
            return Err(format!("ttl must be positive: {ttl}"));
        }
        return Ok(());
    }
    if ttl < 0 {
        return Err(format!("ttl must be non-negative: {ttl}"));
    }
    let Some(hold) = LockPayload::hold_ttl(value) else {
        return Err("no hold ttl".into());
    };
    if hold <= 0 {
        Err(format!("hold ttl must be positive: {hold}"))
    } else if hold > MAX_TTL_MILLIS {
        Err(format!("hold ttl too large: {hold}"))
    } else if hold < ttl {
        Err(format!("hold ttl {hold} less than ttl {ttl}"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(ms: i64) -> Vec<u8> {
        ms.to_be_bytes().to_vec()
    }

    #[test]
    fn ttl_range_of_temp_commands() {
        assert_eq!(
            check_ttl(-1, b"", false).unwrap_err(),
            "ttl must be positive: -1"
        );
        assert!(check_ttl(1, b"", false).is_ok());
        assert!(check_ttl(MAX_TTL_MILLIS, b"", false).is_ok());
    }

    #[test]
    fn try_lock_rules_with_the_reference_messages() {
        assert_eq!(
            check_ttl(20000, &hold(10000), true).unwrap_err(),
            "hold ttl 10000 less than ttl 20000"
        );
        assert_eq!(
            check_ttl(-1, &hold(10), true).unwrap_err(),
            "ttl must be non-negative: -1"
        );
        assert_eq!(
            check_ttl(0, &hold(0), true).unwrap_err(),
            "hold ttl must be positive: 0"
        );
        assert_eq!(
            check_ttl(0, &hold(MAX_TTL_MILLIS + 1), true).unwrap_err(),
            "hold ttl too large: 3153600000001"
        );
        assert!(check_ttl(10000, &hold(10000), true).is_ok());
    }
}
